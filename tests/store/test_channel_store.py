"""Channel admission on one connection: what a claim starts, holds or puts off, and what
an end releases."""
import datetime
import time

import pytest

from harness import job_values
from odoo.addons.queue_celery.core import job_options, jobstore

HOST, PID = "channel-test@host", 4343



def channel(cr, name, **limits):
    values = dict({"capacity": 0, "sequential": False, "rate_limit": 0, "paused": False},
                  **limits)
    cr.execute("INSERT INTO celery_job_channel (name, queue, capacity, sequential, rate_limit,"
               " paused) VALUES (%s, 'default', %s, %s, %s, %s) RETURNING id",
               (name, values["capacity"], values["sequential"], values["rate_limit"],
                values["paused"]))
    return cr.fetchone()[0]


def insert(cr, channel_id):
    """A new pending job in the channel; its Dispatch."""
    return jobstore.insert(cr, job_values(name="channel test", channel_id=channel_id), 1)[1]


def claim(cr, dispatch):
    return jobstore.claim(cr, dispatch.uuid, dispatch.task_id, HOST, PID)


def state(cr, dispatch):
    cr.execute("SELECT state, held IS TRUE FROM celery_job WHERE id = %s",
               (dispatch.id,))
    return cr.fetchone()


def test_a_full_channel_holds_the_job_and_an_end_releases_it(store):
    capped = channel(store, "root.capped", capacity=2)
    jobs = [insert(store, capped) for _ in range(3)]
    first, second = claim(store, jobs[0]), claim(store, jobs[1])
    assert isinstance(first, jobstore.ClaimedJob) and isinstance(second, jobstore.ClaimedJob)
    held = claim(store, jobs[2])
    assert isinstance(held, jobstore.Dropped) and "capacity" in held.reason
    assert held.republish is None
    assert state(store, jobs[2]) == ("enqueued", True)
    # Its publisher records the dispatch after the worker held it: it stays held.
    jobstore.record_dispatch(store, [jobs[2].id], [], [])
    assert state(store, jobs[2]) == ("enqueued", True)
    ended = jobstore.mark_done(store, first.id, "null", 0.1)
    assert [dispatch.id for dispatch in ended.released] == [jobs[2].id]
    assert state(store, jobs[2]) == ("pending", False)
    assert isinstance(claim(store, ended.released[0]), jobstore.ClaimedJob)


def test_a_parent_capacity_counts_its_children_jobs(store):
    channel(store, "root.parent", capacity=1)
    left, right = channel(store, "root.parent.left"), channel(store, "root.parent.right")
    running = claim(store, insert(store, left))
    assert isinstance(running, jobstore.ClaimedJob)
    other = insert(store, right)
    refused = claim(store, other)
    assert isinstance(refused, jobstore.Dropped) and "root.parent runs 1" in refused.reason
    released = jobstore.mark_done(store, running.id, "null", 0.1).released
    assert [dispatch.id for dispatch in released] == [other.id]


def test_a_sequential_channel_keeps_order_and_a_failure_holds_the_rest(store):
    line = channel(store, "root.line", sequential=True)
    first, second = insert(store, line), insert(store, line)
    refused = claim(store, second)
    assert isinstance(refused, jobstore.Dropped) and "sequential" in refused.reason
    running = claim(store, first)
    assert isinstance(running, jobstore.ClaimedJob)
    jobstore.fail(store, running.id, "boom")
    assert jobstore.release_held(store, [line], whole=True) == []
    assert isinstance(claim(store, second), jobstore.Dropped)
    released = jobstore.set_done(store, [first.id], 1).released
    assert [dispatch.id for dispatch in released] == [second.id]


def test_a_paused_channel_holds_its_jobs_until_resumed(store):
    paused = channel(store, "root.paused", paused=True)
    job = insert(store, paused)
    refused = claim(store, job)
    assert isinstance(refused, jobstore.Dropped) and "paused" in refused.reason
    assert jobstore.release_held(store, [paused], whole=True) == []
    store.execute("UPDATE celery_job_channel SET paused = false WHERE id = %s", (paused,))
    assert [dispatch.id for dispatch in jobstore.release_held(store, [paused], whole=True)] \
        == [job.id]


def test_a_rate_limit_puts_the_next_start_off(store):
    slow = channel(store, "root.slow", rate_limit=2)
    first, second = insert(store, slow), insert(store, slow)
    assert isinstance(claim(store, first), jobstore.ClaimedJob)
    later = claim(store, second)
    assert isinstance(later, jobstore.Dropped) and later.republish.id == second.id
    wait = (later.republish.eta - datetime.datetime.utcnow()).total_seconds()
    assert 0.2 < wait <= 0.5
    assert state(store, second) == ("pending", False)  # not held: its message comes back


def test_a_rate_limit_gives_each_job_of_a_burst_its_own_start(store):
    slow = channel(store, "root.burst", rate_limit=2)
    first, *burst = [insert(store, slow) for _ in range(11)]
    assert isinstance(claim(store, first), jobstore.ClaimedJob)
    refused = [claim(store, job) for job in burst]
    etas = [dropped.republish.eta for dropped in refused]
    gaps = [(later - earlier).total_seconds()
            for earlier, later in zip(etas, etas[1:], strict=False)]
    assert all(0.45 < gap < 0.55 for gap in gaps), gaps
    wait = (etas[0] - datetime.datetime.utcnow()).total_seconds()
    assert 0.2 < wait <= 0.5
    # The reserved start is the job's eta too (the sweeper's, if its message is lost).
    store.execute("SELECT eta = %s FROM celery_job WHERE id = %s", (etas[-1], burst[-1].id))
    assert store.fetchone()[0]
    # At its start, the job's message finds it admitted, though the clock is 5 s ahead.
    time.sleep(wait)
    assert isinstance(claim(store, burst[0]), jobstore.ClaimedJob)
    # A message that comes back more than the tolerance early is put off to its start.
    early = claim(store, burst[-1])
    assert isinstance(early, jobstore.Dropped) and "due in" in early.reason
    assert abs((early.republish.eta - etas[-1]).total_seconds()) < 0.1
    # Cancelled and retried, a job has no start reserved any more: it reserves a new one.
    jobstore.cancel(store, [burst[1].id], 1)
    retried, = jobstore.retry(store, [burst[1].id], 1, "admin")
    again = claim(store, retried)
    assert isinstance(again, jobstore.Dropped) and again.republish.eta > etas[-1]


def test_a_job_whose_reserved_start_a_capacity_refuses_is_held(store):
    channel(store, "root.slow", rate_limit=5)
    single = channel(store, "root.slow.single", capacity=1)
    first, second = insert(store, single), insert(store, single)
    running = claim(store, first)
    assert isinstance(running, jobstore.ClaimedJob)
    # Refused by the parent's rate limit first (its clock is 0.2 s ahead): a start is
    # reserved.
    reserved = claim(store, second)
    assert reserved.republish.eta
    time.sleep(max((reserved.republish.eta - datetime.datetime.utcnow()).total_seconds(), 0))
    # At its start the capacity refuses it: held, the start it reserved given up.
    held = claim(store, second)
    assert isinstance(held, jobstore.Dropped) and "capacity" in held.reason
    assert state(store, second) == ("enqueued", True)
    store.execute("SELECT count(*) FROM celery_job_channel_slot WHERE job_id = %s", (second.id,))
    assert store.fetchone()[0] == 0
    released = jobstore.mark_done(store, running.id, "null", 0.1).released
    assert [dispatch.id for dispatch in released] == [second.id]
    # Released, it reserves a start anew (the one it gave up counted against the rate).
    again = claim(store, released[0])
    assert again.republish.eta > reserved.republish.eta
    time.sleep(max((again.republish.eta - datetime.datetime.utcnow()).total_seconds(), 0))
    assert isinstance(claim(store, again.republish), jobstore.ClaimedJob)


def test_an_unknown_channel_is_refused_at_enqueue(store):
    with pytest.raises(job_options.JobOptionError, match="Unknown channel 'root.nowhere'"):
        job_options.check_channel(store, "root.nowhere", None)
    imports = channel(store, "root.imports")
    store.execute("UPDATE celery_job_channel SET queue = 'low' WHERE id = %s", (imports,))
    assert job_options.check_channel(store, "root.imports", None) == (imports, "low")
    assert job_options.check_channel(store, "root.imports", "high") == (imports, "high")
    assert job_options.check_channel(store, None, None) == (None, "default")


def test_the_sweeper_publishes_a_held_job_once_it_may_start(store):
    paused = channel(store, "root.swept", paused=True)
    job = insert(store, paused)
    assert isinstance(claim(store, job), jobstore.Dropped)
    swept = [dispatch.id for dispatch in jobstore.sweep(store, 30, 300, 3600)[0]]
    assert job.id not in swept  # still refused: left held, not published for nothing
    # Resumed by a statement that released nothing (a release that was lost).
    store.execute("UPDATE celery_job_channel SET paused = false WHERE id = %s", (paused,))
    assert job.id in [dispatch.id for dispatch in jobstore.sweep(store, 30, 300, 3600)[0]]
    assert state(store, job) == ("pending", False)


def test_a_cancelled_held_job_is_no_longer_held(store):
    paused = channel(store, "root.cancelled", paused=True)
    job = insert(store, paused)
    claim(store, job)
    jobstore.cancel(store, [job.id], 1)
    assert state(store, job) == ("cancelled", False)


def test_a_held_job_is_released_when_only_a_rate_limit_still_puts_it_off(store):
    slow = channel(store, "root.slow_single", capacity=1, rate_limit=0.5)
    first, second = insert(store, slow), insert(store, slow)
    running = claim(store, first)
    assert isinstance(running, jobstore.ClaimedJob)
    assert "capacity" in claim(store, second).reason
    # The rate clock is 2 s ahead: the release publishes it all the same, and its claim
    # puts it off until its turn instead of leaving it held with nothing to wake it.
    released = jobstore.mark_done(store, running.id, "null", 0.1).released
    assert [dispatch.id for dispatch in released] == [second.id]
    later = claim(store, released[0])
    assert isinstance(later, jobstore.Dropped) and later.republish.eta


def test_a_stopped_job_frees_its_channel_slot_for_the_job_held_behind_it(store):
    capped = channel(store, "root.stoppable", capacity=1)
    running, waiting = insert(store, capped), insert(store, capped)
    claimed = claim(store, running)
    assert isinstance(claimed, jobstore.ClaimedJob)
    assert isinstance(claim(store, waiting), jobstore.Dropped)
    assert jobstore.request_stop(store, [running.id], 1)
    stopped = jobstore.end_stopped(store, running.id, running.task_id, "trace\n", 0.1)
    assert [dispatch.id for dispatch in stopped.released] == [waiting.id]
    assert state(store, waiting) == ("pending", False)
