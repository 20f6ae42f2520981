"""Drain: many jobs enqueued first, then run to the last by one worker, the rate and every
process's memory followed from the first tenth to the last, and the job list after."""
import contextlib
import time

import psutil

from bench.rig import (
    DB_QC,
    celery_worker,
    clear_jobs,
    environment,
    log,
    median,
    use_broker,
)
from bench.scale import list_page_seconds
from harness import query

ENQUEUE_BATCH = 10000  # jobs per transaction, by one enqueue_many()
# The done jobs are counted this often at most (a count scans the index of ended jobs).
SAMPLE_SECONDS = 5.0


def measure_drain(counts, runs, brokers):
    """``drain`` no-op jobs enqueued (``enqueue_many``, 10,000 per transaction) with no
    worker running, then drained by a 2-process worker: the rate of each tenth of them, the
    RSS of the worker's processes, of their PostgreSQL backends and of the broker's server
    as each tenth ends, and the job list's first page with its count on the table they
    leave. One run per broker (each takes the time of its count)."""
    count = counts["drain"]
    results = {}
    with _autovacuum():
        for broker in brokers:
            results[broker] = _drain(broker, count, runs)
    clear_jobs()
    query(DB_QC, "VACUUM celery_job")
    return results


@contextlib.contextmanager
def _autovacuum():
    """PostgreSQL's autovacuum on for the block, as every deployment has it (a CI
    configuration may turn it off: then a million jobs leave millions of dead rows that
    every claim walks over); as it was after."""
    (setting,), = query("postgres", "SHOW autovacuum")
    if setting == "on":
        yield
        return
    log("autovacuum is off on this PostgreSQL: on for the drain")
    query("postgres", "ALTER SYSTEM SET autovacuum = on")
    query("postgres", "SELECT pg_reload_conf()")
    try:
        yield
    finally:
        query("postgres", "ALTER SYSTEM RESET autovacuum")
        query("postgres", "SELECT pg_reload_conf()")


def _drain(broker, count, runs):
    """One broker's drain (see measure_drain)."""
    from odoo.addons.queue_celery import enqueue_many

    use_broker(broker)
    clear_jobs()
    query(DB_QC, "VACUUM ANALYZE celery_job")
    started = time.time()
    for offset in range(0, count, ENQUEUE_BATCH):
        with environment(DB_QC) as env:
            records = env["queue.celery.bench"]
            enqueue_many(records.delayable().noop()
                         for _ in range(min(ENQUEUE_BATCH, count - offset)))
    enqueued = time.time() - started
    log("drain %s: %d jobs enqueued in %.0f s (%.0f jobs/s)", broker, count, enqueued,
        count / enqueued)
    worker = celery_worker(broker, "drain")
    try:
        tenths = _follow(worker, broker, count)
    finally:
        worker.stop()
    result = {"count": count, "enqueue_rate": count / enqueued, "tenths": tenths,
              "list": [list_page_seconds() for _ in range(runs)]}
    log("drain %s: first tenth %.0f jobs/s, last %.0f jobs/s; job list %.0f ms", broker,
        tenths[0]["rate"], tenths[-1]["rate"], 1000 * median(result["list"]))
    return result


def _follow(worker, broker, count):
    """Each tenth of the jobs as it ends: its rate (interpolated between counts of the done
    jobs, 20 a tenth or one every SAMPLE_SECONDS) and the RSS of every process then."""
    interval = min(SAMPLE_SECONDS, count / 20000)
    tenths, done_before, time_before = [], 0, time.time()
    mark, mark_time = 0, time_before
    while len(tenths) < 10:
        time.sleep(interval)
        now = time.time()
        (done,), = query(DB_QC, "SELECT count(*) FROM celery_job WHERE state = 'done'")
        while len(tenths) < 10 and done >= (len(tenths) + 1) * count // 10:
            target = (len(tenths) + 1) * count // 10
            at = time_before + (now - time_before) * (target - done_before) / max(
                done - done_before, 1)
            tenths.append({"rate": (target - mark) / (at - mark_time), "rss": _rss(worker, broker)})
            log("drain %s: %d%% done at %.0f jobs/s", broker, 10 * len(tenths), tenths[-1]["rate"])
            mark, mark_time = target, at
        done_before, time_before = done, now
        if now - mark_time > 600:
            raise RuntimeError("drain %s: no tenth ended in 10 minutes" % broker)
    return tenths


def _rss(worker, broker):
    """RSS (bytes) of the worker's parent and pool processes, of the PostgreSQL backends of
    the bench's databases, and of the broker's server."""
    parent = psutil.Process(worker.process.pid)
    pids = [row[0] for row in query(
        DB_QC, "SELECT pid FROM pg_stat_activity WHERE datname LIKE 'qc_bench%%'"
        " AND pid <> pg_backend_pid()")]
    server = {"redis": "redis-server", "rabbitmq": "beam.smp"}.get(broker)
    return {
        "worker": parent.memory_info().rss,
        "pool": [child.memory_info().rss for child in parent.children()],
        "backends": sum(_uss(pid) for pid in pids),
        "server": sum(process.memory_info().rss for process in psutil.process_iter(["name"])
                      if server and process.info["name"] == server),
    }


def _uss(pid):
    """A backend's own memory: its RSS less the shared buffers it touched."""
    try:
        return psutil.Process(pid).memory_full_info().uss
    except psutil.Error:
        return 0  # ended meanwhile
