"""Enqueue cost: jobs written and published in one transaction, beside raw INSERTs and
queue_job's with_delay."""
import time

import psycopg2

from bench.rig import DB_QC, DB_QJ, clear_jobs, environment, log, purge_broker, use_broker
from harness import query


def measure_enqueue(counts, runs, with_queue_job):
    """Enqueue cost: N jobs in one transaction (commit and publish to Redis included), by
    ``with_delay()`` in a loop and by one ``enqueue_many()``; beside them raw psycopg2
    INSERTs of the same rows, and queue_job's with_delay."""
    from odoo.addons.queue_celery import enqueue_many

    count = counts["enqueue"]
    use_broker("redis")
    ours, ours_before_commit, many, raw, theirs = [], [], [], [], []
    columns = None
    for run in range(runs):
        clear_jobs()
        with environment(DB_QC) as env:
            records = env["queue.celery.bench"]
            started = time.perf_counter()
            for _ in range(count):
                records.with_delay().noop()
            before_commit = time.perf_counter()
            env.cr.commit()
            ended = time.perf_counter()
        ours.append(count / (ended - started))
        ours_before_commit.append(count / (before_commit - started))
        if columns is None:
            columns, row = _job_row()
        purge_broker("redis", ("default",))
        clear_jobs()

        with environment(DB_QC) as env:
            records = env["queue.celery.bench"]
            started = time.perf_counter()
            enqueue_many(records.delayable().noop() for _ in range(count))
            env.cr.commit()
            many.append(count / (time.perf_counter() - started))
        purge_broker("redis", ("default",))
        clear_jobs()

        conn = psycopg2.connect(dbname=DB_QC)
        sql = "INSERT INTO celery_job (%s) VALUES (%s) RETURNING id" % (
            ", ".join(columns), ", ".join(["%s"] * len(columns)))
        started = time.perf_counter()
        with conn.cursor() as cr:
            for index in range(count):
                cr.execute(sql, row[:-2] + ("raw-%d-%d" % (run, index),
                                            "task-%d-%d" % (run, index)))
        conn.commit()
        raw.append(count / (time.perf_counter() - started))
        conn.close()
        clear_jobs()

        if with_queue_job:
            query(DB_QJ, "DELETE FROM queue_job")
            with environment(DB_QJ) as env:
                records = env["queue.job.bench"]
                started = time.perf_counter()
                for _ in range(counts["qj_enqueue"]):
                    records.with_delay().noop()
                env.cr.commit()
                theirs.append(counts["qj_enqueue"] / (time.perf_counter() - started))
            query(DB_QJ, "DELETE FROM queue_job")
        log("enqueue run %d: queue_celery %.0f jobs/s (%.0f before commit), enqueue_many %.0f"
            " jobs/s, raw INSERT %.0f/s%s", run + 1, ours[-1], ours_before_commit[-1], many[-1],
            raw[-1],
            ", queue_job %.0f jobs/s" % theirs[-1] if theirs else "")
    return {"queue_celery": ours, "queue_celery_before_commit": ours_before_commit,
            "enqueue_many": many, "raw_insert": raw, "queue_job": theirs}


def _job_row():
    """The columns and values of one enqueued job, as the product wrote them."""
    columns = ["name", "model_name", "method_name", "record_ids", "args", "kwargs", "context",
               "user_id", "company_id", "queue", "priority", "state", "retry_count",
               "max_retries", "time_limit", "create_uid", "write_uid", "create_date",
               "write_date", "uuid", "celery_task_id"]
    row = query(DB_QC, "SELECT %s FROM celery_job ORDER BY id LIMIT 1" % ", ".join(columns))[0]
    return columns, tuple(row)
