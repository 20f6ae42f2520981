"""Memory: a worker pool's RSS before and after many jobs, beside a bare Celery pool."""
import time

import celery

from bench.rig import (
    DB_QC,
    OUTPUT,
    bare_worker,
    broker_url,
    celery_worker,
    clear_jobs,
    enqueue_jobs,
    jobs_done_check,
    log,
    tasks_done_check,
    use_broker,
    wait_for,
)
from harness import QUEUE_PREFIX


def measure_rss(counts, runs):
    """Pool processes' RSS before and after N jobs (Redis, 2 processes, fresh worker each run)."""
    count = counts["rss"]
    use_broker("redis")
    ours, theirs = [], []
    done_file = OUTPUT / "bare-done.bin"
    bare_app = celery.Celery("bare-publisher", broker=broker_url("redis"), set_as_current=False)
    for run in range(runs):
        clear_jobs()
        worker = celery_worker("redis", "rss")
        try:
            time.sleep(1)
            before = sum(worker.children_rss())
            for _ in range(count // 1000 or 1):
                enqueue_jobs(DB_QC, "queue.celery.bench", min(count, 1000), batch=1000)
            wait_for(jobs_done_check(DB_QC, "celery_job", count), count / 5 + 60)
            time.sleep(0.5)
            after = sum(worker.children_rss())
        finally:
            worker.stop()
        ours.append((before, after))

        done_file.write_bytes(b"")
        bare = bare_worker("redis", done_file)
        try:
            time.sleep(1)
            before = sum(bare.children_rss())
            with bare_app.producer_or_acquire() as producer:
                for _ in range(count):
                    bare_app.send_task("bench.noop", queue=QUEUE_PREFIX + "bare", producer=producer)
            wait_for(tasks_done_check(done_file, count), count / 5 + 60)
            time.sleep(0.5)
            after = sum(bare.children_rss())
        finally:
            bare.stop()
        theirs.append((before, after))
        log("rss run %d: queue_celery pool %.1f -> %.1f MiB, bare Celery pool %.1f -> %.1f MiB",
            run + 1, ours[-1][0] / 2**20, ours[-1][1] / 2**20, theirs[-1][0] / 2**20,
            theirs[-1][1] / 2**20)
    clear_jobs()
    return {"queue_celery": ours, "bare_celery": theirs}
