"""The poll hint (``openai-poll-after-ms``) follows what the run is likely to still need (runs.polling)."""

from datetime import UTC, datetime, timedelta

import pytest

from runs import polling
from runs.models import Run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_pk = iter(range(1, 10**6))


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)


def run(status=Run.Status.IN_PROGRESS, model="gpt-4o-mini", took_ms: float | None = None) -> Run:
    r = Run(pk=next(_pk), status=status, model=model, created_at=T0)
    if took_ms is not None:
        r.completed_at = T0 + ms(took_ms)
    return r


@pytest.fixture(autouse=True)
def fresh():
    polling.reset()
    yield
    polling.reset()


def learn(model: str, *durations: float) -> None:
    for took in durations:
        polling.observe(run(Run.Status.COMPLETED, model, took))


def test_no_history_keeps_the_old_fixed_hint():
    assert polling.poll_after_ms(run(Run.Status.QUEUED), now=T0 + ms(5)) == polling.UNKNOWN_MS == 200


def test_finished_paused_and_cancelling_runs():
    learn("gpt-4o-mini", 60, 60, 60)
    assert polling.poll_after_ms(run(Run.Status.COMPLETED, took_ms=60), now=T0 + ms(5)) == 1000
    assert polling.poll_after_ms(run(Run.Status.REQUIRES_ACTION), now=T0 + ms(5)) == 1000
    assert polling.poll_after_ms(run(Run.Status.CANCELLING), now=T0 + ms(5)) == 50


def test_a_fast_models_run_is_polled_just_after_its_usual_end():
    learn("gpt-4o-mini", *[60] * 10)
    # the first poll, right after the create: one more poll should land just after the run's usual end
    first = polling.poll_after_ms(run(Run.Status.QUEUED), now=T0 + ms(15))
    assert first == 60 - 15 + polling.MARGIN_MS
    later = polling.poll_after_ms(run(), now=T0 + ms(40))
    assert later == 60 - 40 + polling.MARGIN_MS


def test_a_slow_models_run_is_not_polled_while_the_model_works():
    learn("gpt-4o-mini", *[60] * 10)
    learn("slow-2s", *[2050] * 10)
    hint = polling.poll_after_ms(run(model="slow-2s"), now=T0 + ms(20))
    assert hint == 2050 - 20 + polling.MARGIN_MS  # one poll at the end, not ten at 200 ms
    assert polling.poll_after_ms(run(model="gpt-4o-mini"), now=T0 + ms(20)) < 100


def test_a_run_past_its_usual_time_is_polled_at_a_fraction_of_its_age():
    learn("gpt-4o-mini", *[60] * 10)
    assert polling.poll_after_ms(run(), now=T0 + ms(400)) == 100
    assert polling.poll_after_ms(run(), now=T0 + ms(61)) == polling.MIN_MS
    assert polling.poll_after_ms(run(), now=T0 + ms(10**6)) == polling.MAX_MS


def test_the_estimate_is_an_upper_quantile_and_each_run_counts_once():
    slow_one = run(Run.Status.COMPLETED, "m", 900)
    for _ in range(5):
        polling.observe(slow_one)  # the same completed run, read again and again
    learn("m", *[100] * 9)
    assert polling.expected_ms("m") == 100
    learn("m", 300, 300, 300, 300)  # now 4 of 14 are slow: the 75th percentile is
    assert polling.expected_ms("m") == 300
    polling.observe(run(Run.Status.FAILED, "m", 5))  # only completed runs are learned from
    assert polling.expected_ms("m") == 300
