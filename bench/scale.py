"""Scale: the job list and the cleanup cron on a table of many finished jobs; the embedded
broker's delivery from a queue of many waiting messages."""
import contextlib
import time

import kombu
import psycopg2

from bench.rig import DB_BROKER, DB_QC, bench_uid, clear_jobs, embedded_url, environment, log
from harness import QUEUE_PREFIX, connect, query
from odoo import SUPERUSER_ID

LIST_FIELDS = ["name", "model_name", "method_name", "user_id", "queue", "state", "retry_count",
               "create_date", "date_started", "date_done", "exec_time"]
NOW_UTC = "(now() at time zone 'UTC')"


def fill_done_jobs(rows):
    """``rows`` done jobs, all older than the cleanup's 7 days, in one INSERT ... SELECT."""
    started = time.time()
    query(DB_QC, """
        INSERT INTO celery_job (uuid, name, model_name, method_name, record_ids, args, kwargs,
            context, user_id, company_id, queue, priority, state, retry_count, max_retries,
            celery_task_id, time_limit, create_uid, write_uid, create_date, write_date,
            date_enqueued, date_started, date_done, exec_time, result)
        SELECT md5('u' || i), 'Benchmark no-op job', 'queue.celery.bench', 'noop', '[]', '[]',
            '{}', '{}', %(uid)s, 1, (ARRAY['high', 'default', 'low'])[1 + i %% 3], 5, 'done', 0, 5,
            md5('t' || i), 0, %(uid)s, %(uid)s, ts, ts, ts, ts, ts, 0.001, 'null'
        FROM (SELECT i, (now() at time zone 'UTC') - interval '30 days'
                        + i * interval '1 second' AS ts
              FROM generate_series(1, %(rows)s) i) AS s""",
          {"rows": rows, "uid": bench_uid(DB_QC)})
    query(DB_QC, "ANALYZE celery_job")
    return time.time() - started


def list_page_seconds():
    """The time of the job list's first page with its count, as the web client asks them:
    search_read of a page of 80, then search_count."""
    with environment(DB_QC) as env:
        started = time.perf_counter()
        env["celery.job"].search_read([], LIST_FIELDS, limit=80)
        env["celery.job"].search_count([])
        return time.perf_counter() - started


def measure_scale(counts, runs):
    """The job list's first page with its count on N jobs, and the cleanup cron on N."""
    rows = counts["scale"]
    clear_jobs()
    query(DB_QC, "VACUUM celery_job")
    fill = [fill_done_jobs(rows)]
    page, page_raw, group, group_raw = [], [], [], []
    for _ in range(runs):
        page.append(list_page_seconds())
        with environment(DB_QC) as env:
            started = time.perf_counter()
            env["celery.job"].read_group([], ["state"], ["state"])
            group.append(time.perf_counter() - started)
        with contextlib.closing(connect(DB_QC)) as conn, conn.cursor() as cr:
            started = time.perf_counter()
            cr.execute("SELECT id, name, model_name, method_name, user_id, queue, state,"
                       " retry_count, create_date, date_started, date_done, exec_time"
                       " FROM celery_job ORDER BY id DESC LIMIT 80")
            cr.fetchall()
            cr.execute("SELECT count(*) FROM celery_job")
            page_raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            cr.execute("SELECT state, count(*) FROM celery_job GROUP BY state")
            group_raw.append(time.perf_counter() - started)
    # One fill serves every run: the cron's batch commits are made no-ops and the whole
    # deletion rolled back (a run with its commits ends the measurement, and empties the table).
    cleanup, cleanup_raw = [], []
    for run in range(runs + 1):
        with contextlib.closing(psycopg2.connect(dbname=DB_QC)) as conn, conn.cursor() as cr:
            started = time.perf_counter()
            cr.execute("DELETE FROM celery_job WHERE state IN ('done', 'cancelled')"
                       " AND date_done < " + NOW_UTC + " - interval '7 days'")
            elapsed = time.perf_counter() - started
            conn.rollback()
        if run < runs:
            cleanup_raw.append(elapsed)
        with environment(DB_QC, SUPERUSER_ID) as env:
            if run < runs:
                env.cr.commit = lambda: None
            started = time.perf_counter()
            deleted = env["celery.job"]._cron_cleanup()
            cleanup.append(time.perf_counter() - started)
            if run < runs:
                env.cr.rollback()
        assert deleted == rows, deleted
        log("scale run %d (%d rows): list page %.0f ms (raw %.0f), group by state %.0f ms,"
            " cleanup %.1f s%s (one raw DELETE %.1f s)", run + 1, rows, 1000 * page[min(run, runs - 1)],
            1000 * page_raw[min(run, runs - 1)], 1000 * group[min(run, runs - 1)], cleanup[-1],
            " committed" if run == runs else "", elapsed)
    cleanup_committed = cleanup.pop()
    query(DB_QC, "VACUUM celery_job")
    return {"page": page, "page_raw": page_raw, "group": group, "group_raw": group_raw,
            "cleanup": cleanup, "cleanup_raw": cleanup_raw, "fill": fill,
            "cleanup_committed": cleanup_committed}


def measure_backlog(counts, runs):
    """The embedded broker's delivery rate (one consumer taking and acknowledging ``backlog``
    messages) from a queue of ``scale`` waiting messages, beside the same from a queue that
    holds only the messages taken; and what the table holds after (nothing piles up)."""
    take, rows = counts["backlog"], counts["scale"]
    name = QUEUE_PREFIX + "backlog"
    with kombu.Connection(embedded_url()) as conn, conn.SimpleQueue(name) as queue:
        queue.put({"job": "a message as kombu writes it"})
        (queue_id, payload), = query(DB_BROKER, "SELECT queue_id, payload FROM kombu_message"
                                     " WHERE queue_id = (SELECT id FROM kombu_queue"
                                     " WHERE name = %s)", (name,))

        def fill(count):
            query(DB_BROKER, "DELETE FROM kombu_message WHERE queue_id = %s", (queue_id,))
            query(DB_BROKER, "VACUUM ANALYZE kombu_message")
            started = time.time()
            query(DB_BROKER, "INSERT INTO kombu_message (id, queue_id, payload, priority,"
                             " visible, version) SELECT nextval('message_id_sequence'), %s, %s,"
                             " 5, true, 1 FROM generate_series(1, %s)", (queue_id, payload, count))
            query(DB_BROKER, "ANALYZE kombu_message")
            return time.time() - started

        def drain():
            started = time.perf_counter()
            for _ in range(take):
                queue.get(timeout=30).ack()
            return take / (time.perf_counter() - started)

        alone, backlog = [], []
        for _run in range(runs):
            fill(take)
            alone.append(drain())
        filled = fill(rows)
        for run in range(runs):
            backlog.append(drain())
            log("backlog run %d: %.0f messages/s from %d waiting, %.0f/s from %d",
                run + 1, backlog[-1], rows - run * take, alone[run], take)
        (left,), = query(DB_BROKER, "SELECT count(*) FROM kombu_message WHERE queue_id = %s",
                         (queue_id,))
        query(DB_BROKER, "DELETE FROM kombu_message WHERE queue_id = %s", (queue_id,))
    query(DB_BROKER, "VACUUM kombu_message")
    return {"backlog": backlog, "alone": alone, "left": left, "expected_left": rows - runs * take,
            "fill": filled}
