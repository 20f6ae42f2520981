"""Metrics: ``GET /queue_celery/metrics`` on a table of many jobs, over HTTP from a server."""
import contextlib
import time
import urllib.request
import uuid

from bench.rig import DB_QC, clear_jobs, log
from bench.scale import fill_done_jobs
from harness import Server, connect, query

# Of the table's jobs, this many ended within the histograms' window (about 100 jobs/s),
# this many wait for a worker, one in this many was retried once; the rest ended a month ago.
RECENT, WAITING, RETRIED_ONE_IN = 30000, 1000, 100


def fill(rows):
    """``rows`` jobs: the most recent ended within the histograms' window, a few waiting,
    some retried."""
    fill_done_jobs(rows)
    query(DB_QC, """
        UPDATE celery_job SET date_enqueued = ts, date_started = ts + interval '3 ms',
            date_done = ts + interval '10 ms', create_date = ts
        FROM (SELECT id, (now() at time zone 'UTC') - interval '250 seconds'
                         + row_number() OVER (ORDER BY id) * interval '8 ms' AS ts
              FROM celery_job ORDER BY id DESC LIMIT %s) AS recent
        WHERE celery_job.id = recent.id""", (min(RECENT, rows // 2),))
    query(DB_QC, """
        UPDATE celery_job SET state = 'enqueued', date_done = NULL, date_started = NULL,
            exec_time = NULL
        WHERE id IN (SELECT id FROM celery_job ORDER BY id LIMIT %s)""", (WAITING,))
    query(DB_QC, "UPDATE celery_job SET retry_count = 1 WHERE id %% %s = 0", (RETRIED_ONE_IN,))
    query(DB_QC, "VACUUM ANALYZE celery_job")


def scrape(server, token):
    request = urllib.request.Request("http://127.0.0.1:%d/queue_celery/metrics" % server.port,
                                     headers={"Authorization": "Bearer " + token})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200 and b"queue_celery_jobs" in answer.read()
    return time.perf_counter() - started


def measure_metrics(counts, runs):
    """The metrics page's answer time over HTTP, and its SQL alone, on ``counts["scale"]`` jobs."""
    from odoo.addons.queue_celery.core import metrics

    rows = counts["scale"]
    clear_jobs()
    fill(rows)
    token = uuid.uuid4().hex
    server = Server(DB_QC, "", kinds=(), celery_workers_high=0, celery_workers_default=0,
                    celery_workers_low=0, celery_metrics_token=token)
    page, sql = [], []
    try:
        scrape(server, token)  # the server's first request loads what it serves with
        with contextlib.closing(connect(DB_QC)) as conn, conn.cursor() as cr:
            for statement in explained_statements(cr):
                cr.execute("EXPLAIN ANALYZE " + statement)
                log("metrics: %s\n  %s", statement[:100], "\n  ".join(
                    line for line, in cr.fetchall()))
            for run in range(runs):
                page.append(scrape(server, token))
                started = time.perf_counter()
                metrics.exposition(cr)
                sql.append(time.perf_counter() - started)
                log("metrics run %d (%d rows): page %.1f ms, its SQL %.1f ms", run + 1, rows,
                    1000 * page[-1], 1000 * sql[-1])
    finally:
        server.stop()
        clear_jobs()
    return {"page": page, "sql": sql}


def explained_statements(cr):
    """The statements of the metrics page as the job store writes them, with their
    parameters in (``cr`` only quotes them), for EXPLAIN."""
    from odoo.addons.queue_celery.core import jobstore, metrics

    statements = []

    class Recorder:
        def execute(self, statement, params=None):
            statements.append(cr.mogrify(statement, params).decode())

        def fetchall(self):
            return []

    jobstore.count_jobs(Recorder())
    jobstore.retries_per_queue(Recorder())
    jobstore.oldest_waiting_ages(Recorder())
    jobstore.ended_job_histograms(Recorder(), metrics.HISTOGRAM_WINDOW,
                                  metrics.RUN_SECONDS_BUCKETS,
                                  metrics.START_LATENCY_SECONDS_BUCKETS)
    return statements
