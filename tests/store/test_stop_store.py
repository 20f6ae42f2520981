"""Stopping a running job and running a job again, in the job store: what each statement
leaves in the tables and what it tells the workers."""
import contextlib
import select
import time

import psycopg2

from harness import job_values
from odoo.addons.queue_celery.core import jobstore

ROW = job_values(name="stop test")
HOST, PID = "stop-test@host", 4343
RUN_COLUMNS = "date_started, date_done, exec_time, worker_hostname, worker_pid"



def started(cr, depends_on=()):
    """A new job claimed by a worker (or waiting for ``depends_on``); (id, task id)."""
    job_id, dispatch = jobstore.insert(cr, ROW, 1, depends_on)
    if dispatch:
        jobstore.claim(cr, dispatch.uuid, dispatch.task_id, HOST, PID)
        return job_id, dispatch.task_id
    return job_id, None


def row(cr, job_id, columns="state, exc_info, retry_history"):
    cr.execute("SELECT " + columns + " FROM celery_job WHERE id = %s", (job_id,))
    return cr.fetchone()


def user_name(cr, uid):
    cr.execute("SELECT p.name FROM res_users u JOIN res_partner p ON p.id = u.partner_id"
               " WHERE u.id = %s", (uid,))
    return cr.fetchone()[0]


def test_a_stop_is_asked_of_started_jobs_only_and_told_to_workers_once_committed(database):
    with contextlib.closing(psycopg2.connect(dbname=database)) as conn, \
            contextlib.closing(psycopg2.connect(dbname=database)) as listener:
        listener.autocommit = True
        listener.cursor().execute("LISTEN " + jobstore.STOP_CHANNEL)
        cr = conn.cursor()
        running, task_id = started(cr)
        queued, _dispatch = jobstore.insert(cr, ROW, 1)
        done, _task = started(cr)
        jobstore.mark_done(cr, done, "null", 0.1)
        conn.commit()
        try:
            assert jobstore.request_stop(cr, [running, queued, done], 1) == [running]
            assert row(cr, running)[0] == "started", "the worker ends it, not the request"
            assert jobstore.stop_requested(cr, running, task_id)
            select.select([listener], [], [], 0.5)
            listener.poll()
            assert listener.notifies == [], "nothing is told before the request commits"
            conn.commit()
            deadline = time.time() + 10
            while not listener.notifies and time.time() < deadline:
                select.select([listener], [], [], 0.5)
                listener.poll()
            assert [notify.payload for notify in listener.notifies] == [
                "%d %s" % (running, task_id)]
        finally:
            cr.execute("SELECT pg_advisory_unlock_all()")
            cr.execute("DELETE FROM celery_job WHERE id IN %s", ((running, queued, done),))
            conn.commit()


def test_a_stopped_job_ends_cancelled_saying_who_stopped_it_and_so_do_its_dependents(store):
    job_id, task_id = started(store)
    dependent, _task = started(store, depends_on=[job_id])
    further, _task = started(store, depends_on=[dependent])
    assert jobstore.request_stop(store, [job_id], 1) == [job_id]
    ended = jobstore.end_stopped(store, job_id, task_id,
                                 "Traceback (most recent call last):\nJobStopped: x\n", 1.5)
    assert sorted(ended.ids) == [job_id, dependent, further]
    state, exc_info, history = row(store, job_id)
    name = user_name(store, 1)
    assert state == "cancelled"
    assert exc_info.endswith("JobStopped: x\nStopped by %s." % name)
    assert history.endswith("attempt 1 stopped: Stopped by %s." % name)
    assert [row(store, other)[0] for other in (dependent, further)] == ["cancelled"] * 2
    assert not jobstore.stop_requested(store, job_id, task_id), "the request is used up"


def test_a_job_that_ends_on_its_own_first_keeps_its_end(store):
    job_id, task_id = started(store)
    jobstore.request_stop(store, [job_id], 1)
    assert jobstore.mark_done(store, job_id, "42", 0.1).ids == [job_id]
    assert jobstore.end_stopped(store, job_id, task_id, "", 0.2) is None
    assert row(store, job_id) == ("done", None, None)


def test_a_stop_asked_of_one_run_stops_no_later_run(store):
    job_id, task_id = started(store)
    jobstore.request_stop(store, [job_id], 1)
    claimed = jobstore.ClaimedJob(job_id, "", [None] * len(jobstore.CLAIMED_COLUMNS))
    claimed.queue, claimed.priority = "default", 5
    [retry] = jobstore.mark_retry(store, claimed, "Traceback\nValueError: again", seconds=0)
    assert not jobstore.stop_requested(store, job_id, retry.task_id)
    assert jobstore.end_stopped(store, job_id, retry.task_id, "", 0.2) is None
    assert jobstore.request_stop(store, [job_id], 1) == [], "it is not running"
    store.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job_id,))
    assert jobstore.request_stop(store, [job_id], 1) == [job_id]
    assert jobstore.stop_requested(store, job_id, retry.task_id)


def test_running_again_clears_what_the_previous_run_left(store):
    job_id, _task_id = started(store)
    assert row(store, job_id, RUN_COLUMNS)[3:] == (HOST, PID)
    jobstore.fail(store, job_id, "Traceback\nValueError: no", exec_time=2.5)
    assert None not in row(store, job_id, RUN_COLUMNS)
    jobstore.retry(store, [job_id], 1, "admin")
    assert row(store, job_id, "state, " + RUN_COLUMNS) == ("pending", None, None, None, None, None)
    store.execute("SELECT uuid, celery_task_id FROM celery_job WHERE id = %s", (job_id,))
    claimed = jobstore.claim(store, *store.fetchone(), HOST, PID)
    jobstore.mark_retry(store, claimed, "Traceback\nValueError: again", seconds=30)
    assert row(store, job_id, "state, " + RUN_COLUMNS) == ("enqueued", None, None, None, None, None)


def test_a_job_whose_worker_died_after_a_stop_was_asked_ends_as_asked(store):
    job_id, task_id = started(store)
    jobstore.request_stop(store, [job_id], 1)
    store.execute("UPDATE celery_job SET date_started = date_started - interval '1 hour'"
                  " WHERE id = %s", (job_id,))
    dispatches, _notices = jobstore.sweep(store, grace=30, window=300, republish_after=3600)
    assert job_id not in [dispatch.id for dispatch in dispatches], "not run again"
    state, exc_info, _history = row(store, job_id)
    assert state == "cancelled"
    assert exc_info == "The worker running this job died.\nStopped by %s." % user_name(store, 1)
