"""The heap of the long-lived processes (web, worker), settled once startup has loaded what they keep for life.

Django, DRF, LiteLLM and its model tables are about 400k objects that live as long as the process; each full pass
of the cyclic garbage collector walked them all again, 100–400 ms with the GIL held, during which no stream or run
in the process moved (measured under 50 concurrent streams: a pass every few seconds in the web and in the worker,
about a tenth of their CPU). ``gc.freeze`` moves them out of the collector's reach; the larger first-generation
threshold makes the young passes, which walk every object of the runs in flight, less frequent.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 7000  # Python's default is 700


def settle() -> None:
    """Load LiteLLM (the bulk of the heap; else the first request that needs it loads it, after the freeze), then
    freeze everything loaded so far."""
    import litellm  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *gc.get_threshold()[1:])
