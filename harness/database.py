"""Reading jobs back: each statement on a connection of its own, committed at once."""
import contextlib
import time

import psycopg2

FINAL_STATES = ("done", "failed", "cancelled")


def connect(dbname):
    """A psycopg2 connection to ``dbname`` in autocommit, as Odoo's own connections reach it."""
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def query(dbname, sql, params=()):
    """The rows of ``sql`` (None for a statement that returns none)."""
    with contextlib.closing(connect(dbname)) as conn, conn.cursor() as cr:
        # Without parameters, a % in the text (LIKE '%x%') is not a placeholder.
        cr.execute(sql, params or None)
        return cr.fetchall() if cr.description else None


def wait_for_jobs(dbname, job_ids, states=FINAL_STATES, timeout=60):
    """Wait until every job is in one of ``states``; return {id: state}."""
    deadline = time.time() + timeout
    while True:
        found = dict(query(dbname, "SELECT id, state FROM celery_job WHERE id IN %s",
                           (tuple(job_ids),)))
        if all(found.get(job_id) in states for job_id in job_ids) or time.time() > deadline:
            return found
        time.sleep(0.1)


def count_rows(dbname, marker):
    """How many rows of the test jobs addon (tests/addons) carry ``marker``."""
    return query(dbname, "SELECT count(*) FROM queue_celery_test_record WHERE marker = %s",
                 (marker,))[0][0]


def job_values(**values):
    """The columns of a new pending job of the superuser (a count of partners), as the job
    store's ``insert`` takes them, with ``values`` instead where given."""
    return dict({"name": "store test", "model_name": "res.partner",
                 "method_name": "search_count", "record_ids": "[]", "args": "[[]]",
                 "kwargs": "{}", "context": "{}", "user_id": 1, "company_id": 1,
                 "queue": "default", "priority": 5, "eta": None, "max_retries": 5,
                 "identity_key": None, "time_limit": 0, "channel_id": None}, **values)
