"""Start latency: from the enqueuing commit to the job's start, alone, under load, and for
``high`` jobs while ``low`` ones flood the queues."""
import time

from bench.rig import (
    DB_QC,
    celery_worker,
    clear_jobs,
    enqueue_jobs,
    enqueue_one,
    jobs_done_check,
    log,
    median,
    percentile,
    purge_broker,
    start_latencies,
    use_broker,
    wait_for,
)
from harness import connect, query


def measure_latency(counts, runs, brokers, e2e=None):
    """Commit-to-started latency: one job at a time, and under a steady load of half the
    end-to-end rate measured in this run (at most ``load_rate``), one job per transaction."""
    results = {}
    for broker in brokers:
        rate = counts["load_rate"]
        if e2e and broker in e2e:
            rate = max(5, min(rate, int(median(e2e[broker]["queue_celery"]) / 2)))
        use_broker(broker)
        worker = celery_worker(broker, "latency")
        light, load = [], []
        try:
            for run in range(runs):
                clear_jobs()
                conn = connect(DB_QC)
                cr = conn.cursor()
                job_times = {}
                for _ in range(counts["light"]):
                    job_id, committed = enqueue_one(DB_QC)
                    job_times[job_id] = committed

                    def started(job_id=job_id, cr=cr):
                        cr.execute("SELECT state FROM celery_job WHERE id = %s", (job_id,))
                        return cr.fetchone()[0] in ("started", "done")
                    wait_for(started, 30, interval=0.002)
                    time.sleep(0.02)
                conn.close()
                light.append(start_latencies(job_times))

                clear_jobs()
                job_times = {}
                total = rate * counts["load_seconds"]
                begin = time.time()
                for index in range(total):
                    delay = begin + index / rate - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    job_id, committed = enqueue_one(DB_QC)
                    job_times[job_id] = committed
                achieved = total / (time.time() - begin)
                wait_for(jobs_done_check(DB_QC, "celery_job", total), 120)
                load.append(start_latencies(job_times))
                log("latency %s run %d: light p50 %.1f ms p95 %.1f ms; load (%.0f jobs/s)"
                    " p50 %.1f ms p95 %.1f ms", broker, run + 1,
                    1000 * percentile(light[-1], 50), 1000 * percentile(light[-1], 95), achieved,
                    1000 * percentile(load[-1], 50), 1000 * percentile(load[-1], 95))
        finally:
            worker.stop()
        results[broker] = {"light": light, "load": load, "rate": rate}
    return results


def measure_priority(counts, runs):
    """p95 start latency of high jobs committed one at a time while low jobs flood the
    queues, one ``odoo celery worker`` (2 processes) on all queues, Redis."""
    broker = "redis"
    use_broker(broker)
    worker = celery_worker(broker, "priority")
    high, light = [], []
    try:
        for run in range(runs):
            for flood in (False, True):
                clear_jobs()
                if flood:
                    enqueue_jobs(DB_QC, "queue.celery.bench", counts["low"], batch=1000,
                                 queue="low")
                job_times = {}
                for _ in range(counts["high"]):
                    job_id, committed = enqueue_one(DB_QC, queue="high")
                    job_times[job_id] = committed
                    time.sleep(0.05)
                wait_for(lambda ids=tuple(job_times): query(
                    DB_QC, "SELECT count(*) FROM celery_job WHERE id IN %s AND state = 'done'",
                    (ids,))[0][0] == len(ids), 120)
                low_done = query(DB_QC, "SELECT count(*) FROM celery_job WHERE queue = 'low'"
                                 " AND state = 'done'")[0][0]
                (high if flood else light).append(start_latencies(job_times))
                purge_broker(broker, ("low",))
                query(DB_QC, "UPDATE celery_job SET state = 'cancelled'"
                      " WHERE state IN ('pending', 'enqueued')")
                wait_for(lambda: not query(DB_QC, "SELECT 1 FROM celery_job"
                                           " WHERE state = 'started'"), 60)
            log("priority run %d: high p95 %.1f ms under %d low (%d low done meanwhile),"
                " %.1f ms alone", run + 1, 1000 * percentile(high[-1], 95), counts["low"],
                low_done, 1000 * percentile(light[-1], 95))
    finally:
        worker.stop()
    return {"high_under_flood": high, "high_alone": light}
