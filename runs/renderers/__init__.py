"""Renderers turn the run's internal events (``runs.event_model``) into one API's wire events."""
