"""Channels across two ``odoo celery worker`` processes of two pool processes each: the
limits hold across every worker, and an edit reaches running workers without a restart."""
import datetime
import time
import uuid

import pytest

from harness import BROKERS, Worker, query, require_port, use_broker, wait_for_jobs

JOB_SECONDS = 0.3


@pytest.fixture(scope="module")
def workers(database):
    """Two worker processes (two pool processes each) on Redis."""
    url, port = BROKERS["redis"]
    require_port("redis", port)
    use_broker(url)
    started = [Worker(database, url, "channels-%s" % side, "--concurrency", "2")
               for side in ("a", "b")]
    yield started
    for worker in started:
        worker.stop()
    use_broker("")


def new_channel(env, **values):
    name = "root.%s" % uuid.uuid4().hex[:12]
    return env["celery.job.channel"].create(dict(values, name=name))


def enqueue(env, channel, count, seconds=JOB_SECONDS, method="sleep_then_make"):
    records = env["queue.celery.test.record"]
    mark = uuid.uuid4().hex
    args = (mark, seconds) if method == "sleep_then_make" else (mark,)
    return [getattr(records.with_delay(channel=channel.name), method)(*args).id
            for _ in range(count)]


def runs(database, job_ids):
    """(date_started, date_done, worker_hostname, worker_pid) of the jobs, by start."""
    return [(as_datetime(start), as_datetime(done), hostname, pid)
            for start, done, hostname, pid in query(
                database, "SELECT date_started, date_done, worker_hostname, worker_pid"
                " FROM celery_job WHERE id IN %s ORDER BY date_started", (tuple(job_ids),))]


def as_datetime(value):
    """A timestamp as a datetime (Odoo's cursors in this process read them as text)."""
    return datetime.datetime.fromisoformat(value) if isinstance(value, str) else value


def most_at_once(rows):
    """The most jobs running at the same moment."""
    events = sorted([(start, 1) for start, _done, *_ in rows]
                    + [(done, -1) for _start, done, *_ in rows])
    running = peak = 0
    for _when, step in events:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def states(database, job_ids):
    return {state for state, in query(database, "SELECT state FROM celery_job WHERE id IN %s",
                                      (tuple(job_ids),))}


@pytest.mark.parametrize("capacity", [1, 2])
def test_capacity_is_never_exceeded_across_two_worker_processes(capacity, env, database,
                                                                workers):
    channel = new_channel(env, capacity=capacity)
    job_ids = enqueue(env, channel, 20)
    env.cr.commit()
    assert set(wait_for_jobs(database, job_ids, timeout=120).values()) == {"done"}
    rows = runs(database, job_ids)
    assert most_at_once(rows) == capacity
    # Both worker processes (commands) ran some: the limit held across them.
    assert len({hostname for _start, _done, hostname, _pid in rows}) == 2


def test_a_parent_capacity_counts_its_children_jobs(env, database, workers):
    parent = new_channel(env, capacity=1)
    children = [env["celery.job.channel"].create({"name": "%s.%s" % (parent.name, side)})
                for side in ("left", "right")]
    job_ids = enqueue(env, children[0], 5) + enqueue(env, children[1], 5)
    env.cr.commit()
    assert set(wait_for_jobs(database, job_ids, timeout=120).values()) == {"done"}
    assert most_at_once(runs(database, job_ids)) == 1


def test_a_sequential_channel_keeps_order_and_a_failure_holds_the_rest(env, database,
                                                                       workers):
    channel = new_channel(env, sequential=True)
    first = enqueue(env, channel, 1, seconds=0.1)
    failing = enqueue(env, channel, 1, method="make_then_fail")
    behind = enqueue(env, channel, 4, seconds=0.1)
    env.cr.commit()
    assert wait_for_jobs(database, first + failing) == {first[0]: "done", failing[0]: "failed"}
    time.sleep(3)
    assert states(database, behind) == {"enqueued"}
    env["celery.job"].browse(failing).button_done()
    env.cr.commit()
    assert set(wait_for_jobs(database, behind).values()) == {"done"}
    order = [job_id for job_id, in query(
        database, "SELECT id FROM celery_job WHERE id IN %s ORDER BY date_started",
        (tuple(first + behind),))]
    assert order == first + behind
    assert most_at_once(runs(database, first + failing + behind)) == 1


def test_a_paused_channel_holds_its_jobs_with_workers_idle_until_resumed(env, database,
                                                                         workers):
    channel = new_channel(env)
    channel.button_pause()
    job_ids = enqueue(env, channel, 4, seconds=0.1)
    env.cr.commit()
    held_after = time.time() + 10
    logs_before = sum(worker.output().count("held until it may start") for worker in workers)
    while time.time() < held_after:
        assert states(database, job_ids) <= {"pending", "enqueued"}
        time.sleep(0.5)
    # Each job was refused once, not claimed again and again.
    refusals = sum(worker.output().count("held until it may start") for worker in workers)
    assert refusals - logs_before <= len(job_ids)
    channel.button_resume()
    env.cr.commit()
    assert set(wait_for_jobs(database, job_ids).values()) == {"done"}


def test_a_rate_limit_holds_across_workers_and_puts_each_job_off_once(env, database,
                                                                     workers):
    rate = 5.0
    channel = new_channel(env, rate_limit=rate)
    job_ids = enqueue(env, channel, 20, method="make")
    env.cr.commit()
    assert set(wait_for_jobs(database, job_ids, timeout=120).values()) == {"done"}
    starts = [start for start, *_ in runs(database, job_ids)]
    measured = (len(starts) - 1) / (starts[-1] - starts[0]).total_seconds()
    assert measured <= rate * 1.2
    # Each job the burst brought too early got its own later start: refused about once,
    # not at every start of the others.
    refusals = sum(worker.output().count("channel %s starts" % channel.name)
                   for worker in workers)
    assert refusals <= 1.5 * len(job_ids), "%d refusals for %d jobs" % (refusals, len(job_ids))


def test_a_channel_edit_reaches_running_workers(env, database, workers):
    channel = new_channel(env, capacity=1)
    job_ids = enqueue(env, channel, 12, seconds=0.6)
    env.cr.commit()
    deadline = time.time() + 60
    while len(query(database, "SELECT id FROM celery_job WHERE id IN %s AND state = 'done'",
                    (tuple(job_ids),))) < 2:
        assert time.time() < deadline
        time.sleep(0.1)
    channel.capacity = 4
    env.cr.commit()
    edited = time.time()
    assert set(wait_for_jobs(database, job_ids, timeout=120).values()) == {"done"}
    rows = runs(database, job_ids)
    assert most_at_once(rows[:2]) == 1
    assert most_at_once(rows) > 1, "the new capacity never reached the workers (edited %.1f s" \
        " before the end)" % (time.time() - edited)


def test_a_function_declared_in_data_sets_its_jobs_defaults_and_retry_pattern(
        env, database, workers):
    mark = uuid.uuid4().hex
    job = env["queue.celery.test.record"].with_delay().retry_by_pattern(mark)
    env.cr.commit()
    assert job.max_retries == 7
    deadline = time.time() + 60
    # Retried once, and its retry's dispatch recorded (nothing moves it for 20 s then): put
    # back at eta - 20 s, it was handed to the broker again after that.
    while not query(database, "SELECT 1 FROM celery_job WHERE id = %s AND retry_count = 1"
                    " AND date_enqueued >= eta - interval '20 seconds'", (job.id,)):
        assert time.time() < deadline
        time.sleep(0.1)
    # The pattern's 20 s, not the default backoff (5 s base, jitter: 2.5 to 7.5 s).
    (wait,), = query(database, "SELECT extract(epoch FROM eta - (now() at time zone 'UTC'))"
                     " FROM celery_job WHERE id = %s", (job.id,))
    assert 15 < float(wait) <= 20
    env.cr.rollback()  # a snapshot that sees the worker's updates
    job.button_cancel()
    env.cr.commit()
    assert query(database, "SELECT state FROM celery_job WHERE id = %s", (job.id,)) \
        == [("cancelled",)]
