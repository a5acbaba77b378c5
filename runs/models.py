"""Runs and their steps. Tool calls and outputs live in step rows (``step_details``), not only in prompts."""

from django.db import models

from tenancy.models import TenantModel


class Run(TenantModel):
    id_kind = "run"

    class Status(models.TextChoices):
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        REQUIRES_ACTION = "requires_action"
        CANCELLING = "cancelling"
        CANCELLED = "cancelled"
        FAILED = "failed"
        COMPLETED = "completed"
        INCOMPLETE = "incomplete"
        EXPIRED = "expired"

    ACTIVE = (Status.QUEUED, Status.IN_PROGRESS, Status.REQUIRES_ACTION, Status.CANCELLING)
    TERMINAL = (Status.CANCELLED, Status.FAILED, Status.COMPLETED, Status.INCOMPLETE, Status.EXPIRED)

    thread = models.ForeignKey("assistants.Thread", on_delete=models.CASCADE, related_name="runs")
    assistant = models.ForeignKey("assistants.Assistant", on_delete=models.SET_NULL, null=True, related_name="+")
    assistant_public_id = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    required_action = models.JSONField(null=True)
    last_error = models.JSONField(null=True)
    incomplete_details = models.JSONField(null=True)
    expires_at = models.DateTimeField(null=True)
    started_at = models.DateTimeField(null=True)
    cancelled_at = models.DateTimeField(null=True)
    failed_at = models.DateTimeField(null=True)
    completed_at = models.DateTimeField(null=True)
    model = models.CharField(max_length=256)
    instructions = models.TextField(default="", blank=True)
    additional_instructions = models.TextField(null=True, blank=True)
    tools = models.JSONField(default=list)
    metadata = models.JSONField(default=dict)
    usage = models.JSONField(null=True)
    temperature = models.FloatField(null=True)
    top_p = models.FloatField(null=True)
    max_prompt_tokens = models.IntegerField(null=True)
    max_completion_tokens = models.IntegerField(null=True)
    truncation_strategy = models.JSONField(null=True)
    tool_choice = models.JSONField(null=True)
    parallel_tool_calls = models.BooleanField(default=True)
    response_format = models.JSONField(null=True)
    reasoning_effort = models.CharField(max_length=16, null=True, blank=True)
    include = models.JSONField(default=list)
    # Execution bookkeeping (never shown): which task owns the run, how often it was (re)started,
    # and when its worker last proved alive.
    claimed_by = models.CharField(max_length=64, null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True)
    # The provider credentials the request that created (or continued) the run brought in headers, as a Fernet
    # token for the worker (tenancy/credentials.py); cleared when the run ends.
    sealed_credentials = models.TextField(null=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["thread", "id"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]
        constraints = [
            # One active run per thread, enforced by the database itself.
            models.UniqueConstraint(
                fields=["thread"],
                condition=models.Q(status__in=["queued", "in_progress", "requires_action", "cancelling"]),
                name="one_active_run_per_thread",
            ),
        ]


class RunStep(TenantModel):
    """``pk`` order is the step's position in its thread."""

    id_kind = "step"

    class Type(models.TextChoices):
        MESSAGE_CREATION = "message_creation"
        TOOL_CALLS = "tool_calls"

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        CANCELLED = "cancelled"
        FAILED = "failed"
        COMPLETED = "completed"
        EXPIRED = "expired"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    thread = models.ForeignKey("assistants.Thread", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=20, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    step_details = models.JSONField(default=dict)
    last_error = models.JSONField(null=True)
    expired_at = models.DateTimeField(null=True)
    cancelled_at = models.DateTimeField(null=True)
    failed_at = models.DateTimeField(null=True)
    completed_at = models.DateTimeField(null=True)
    metadata = models.JSONField(default=dict)
    usage = models.JSONField(null=True)
    # Which model turn of the run produced this step: redelivered work reuses it instead of duplicating.
    turn = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["run", "id"])]
