"""The job pipeline end to end: real database, real worker, each broker."""
import socket
import threading
import time
import uuid

import psycopg2
import pytest

import odoo
from harness import count_rows, environment, invalidate, query, wait_for_jobs
from odoo.addons.queue_celery.core import celeryapp, runner
from odoo.addons.queue_celery.core.celeryapp import TASK_NAME, celery_app, queue_name
from odoo.addons.queue_celery.core.jobstore import RUNNING_LOCK

pytestmark = pytest.mark.usefixtures("worker")


def marker():
    return uuid.uuid4().hex


def test_job_changes_data_and_ends_done(env, database):
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().make(mark, {"when": [1, 2]})
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert count_rows(database, mark) == 1
    (result, exec_time, hostname), = query(
        database, "SELECT result, exec_time, worker_hostname FROM celery_job WHERE id = %s",
        (job.id,))
    assert result.isdigit() and exec_time > 0 and hostname


def test_enqueue_by_model_name_and_priority_queues(env, database):
    marks = [marker() for _ in range(3)]
    jobs = [env["celery.job"].enqueue("queue.celery.test.record", "make", args=[mark],
                                      queue=queue, priority=priority)
            for mark, queue, priority in zip(marks, ("high", "default", "low"), (0, 5, 9), strict=True)]
    env.cr.commit()
    ids = [job.id for job in jobs]
    assert set(wait_for_jobs(database, ids).values()) == {"done"}
    assert [count_rows(database, mark) for mark in marks] == [1, 1, 1]


def test_raising_job_fails_with_traceback_and_its_writes_rolled_back(env, database):
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().make_then_fail(mark)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "Traceback" in exc_info and "boom " + mark in exc_info
    assert count_rows(database, mark) == 0


def test_retryable_job_is_retried_then_succeeds(env, database):
    mark = marker()
    job = env["queue.celery.test.record"].with_delay(max_retries=3).make_after_retries(mark, 2)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    (retry_count,), = query(database, "SELECT retry_count FROM celery_job WHERE id = %s",
                            (job.id,))
    assert retry_count == 2
    assert count_rows(database, mark) == 1
    # The attempts that asked for a retry were rolled back.
    assert count_rows(database, mark + "-attempt") == 1


def test_retries_used_up_ends_failed(env, database):
    mark = marker()
    job = env["queue.celery.test.record"].with_delay(max_retries=1).make_after_retries(mark, 5)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "failed"}
    (exc_info, retry_count), = query(
        database, "SELECT exc_info, retry_count FROM celery_job WHERE id = %s", (job.id,))
    assert "Retries used up (1)" in exc_info and retry_count == 1
    assert count_rows(database, mark) == 0


def test_rolled_back_enqueue_never_runs(env, database):
    mark = marker()
    job_id = env["queue.celery.test.record"].with_delay().make(mark).id
    env.cr.rollback()
    sentinel = env["queue.celery.test.record"].with_delay().make(marker())
    env.cr.commit()
    wait_for_jobs(database, [sentinel.id])
    time.sleep(1)
    assert query(database, "SELECT count(*) FROM celery_job WHERE id = %s", (job_id,)) == [(0,)]
    assert count_rows(database, mark) == 0


def test_concurrent_identity_keys_give_one_job(database):
    key = "identity-" + marker()
    results = {}

    def enqueue(name, hold):
        with environment(database) as env:
            cr = env.cr
            for _attempt in range(5):
                try:
                    # Due in an hour: it stays waiting while the other transaction tries.
                    results[name] = env["queue.celery.test.record"].with_delay(
                        identity_key=key, countdown=3600).make(key).id
                    time.sleep(hold)
                    cr.commit()
                    return
                except psycopg2.extensions.TransactionRollbackError:
                    # What Odoo's RPC layer does on a serialization failure: try again.
                    cr.rollback()

    first = threading.Thread(target=enqueue, args=("first", 1.0))
    second = threading.Thread(target=enqueue, args=("second", 0))
    first.start()
    time.sleep(0.3)
    second.start()
    first.join()
    second.join()
    assert results["first"] == results["second"]
    assert query(database, "SELECT count(*) FROM celery_job WHERE identity_key = %s",
                 (key,)) == [(1,)]


def test_job_runs_with_the_enqueuing_users_rights(env, database):
    user = env["res.users"].create({
        "name": "Job runner " + marker(), "login": marker(),
        "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
    record = env["queue.celery.test.record"].create({"marker": marker()})
    user_env = env(user=user.id)
    # Internal users may not delete test records (no unlink right): the job must fail.
    forbidden = user_env["queue.celery.test.record"].browse(record.id).with_delay().unlink()
    allowed = user_env["queue.celery.test.record"].with_delay().make(record.marker)
    env.cr.commit()
    assert wait_for_jobs(database, [forbidden.id, allowed.id]) == {
        forbidden.id: "failed", allowed.id: "done"}
    (exc_info, user_id), = query(
        database, "SELECT exc_info, user_id FROM celery_job WHERE id = %s", (forbidden.id,))
    assert "AccessError" in exc_info and user_id == user.id
    assert count_rows(database, record.marker) == 2


def test_redelivered_message_does_not_run_a_done_job_again(env, database, worker):
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().make(mark)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    # The same message again, as a broker redelivers it.
    celery_app().send_task(TASK_NAME, args=[database, job.uuid], task_id=job.celery_task_id,
                           queue=queue_name("default"), routing_key=queue_name("default"))
    deadline = time.time() + 30
    while "job %s: message dropped, it is done" % job.uuid not in worker.output():
        assert time.time() < deadline, "the redelivered message was not seen"
        time.sleep(0.2)
    assert count_rows(database, mark) == 1


def test_forged_messages_are_dropped(database, worker):
    missing_job = str(uuid.uuid4())
    celery_app().send_task(TASK_NAME, args=[database, missing_job],
                           queue=queue_name("default"), routing_key=queue_name("default"))
    celery_app().send_task(TASK_NAME, args=["no_such_database_" + marker(), missing_job],
                           queue=queue_name("default"), routing_key=queue_name("default"))
    deadline = time.time() + 30
    while not ("job %s: message dropped, no such job" % missing_job in worker.output()
               and "does not exist, message dropped" in worker.output()):
        assert time.time() < deadline, "forged messages were not dropped"
        time.sleep(0.2)


def test_countdown_delays_the_start(env, database):
    mark = marker()
    enqueued_at = time.time()
    job = env["queue.celery.test.record"].with_delay(countdown=2).make(mark)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert time.time() - enqueued_at >= 2
    (started, eta), = query(database, "SELECT date_started, eta FROM celery_job WHERE id = %s",
                            (job.id,))
    assert started >= eta


def test_deferred_shell_api(database):
    from odoo.addons.queue_celery import Deferred, HighPriorityDeferred, LowPriorityDeferred

    ids = [deferred(database, odoo.SUPERUSER_ID, "res.users", "search", args=([],), kwargs={})
           for deferred in (Deferred, HighPriorityDeferred, LowPriorityDeferred)]
    assert set(wait_for_jobs(database, ids).values()) == {"done"}
    assert [queue for queue, in query(database, "SELECT queue FROM celery_job WHERE id IN %s"
                                      " ORDER BY id", (tuple(ids),))] == ["default", "high", "low"]


def test_retry_cancel_done_buttons(env, database):
    mark = marker()
    failed = env["queue.celery.test.record"].with_delay().make_then_fail(mark)
    waiting = env["queue.celery.test.record"].with_delay(countdown=3600).make(mark)
    env.cr.commit()
    assert wait_for_jobs(database, [failed.id]) == {failed.id: "failed"}
    waiting.button_cancel()
    invalidate(failed)
    failed.button_retry()
    env.cr.commit()
    assert wait_for_jobs(database, [failed.id, waiting.id]) == {failed.id: "failed",
                                                                waiting.id: "cancelled"}
    (retry_count,), = query(database, "SELECT retry_count FROM celery_job WHERE id = %s",
                            (failed.id,))
    assert retry_count == 0
    failed.button_done()
    env.cr.commit()
    assert query(database, "SELECT state FROM celery_job WHERE id = %s", (failed.id,)) == [
        ("done",)]


def test_a_job_due_after_the_eta_window_waits_in_the_database(env, database):
    odoo.tools.config["celery_eta_window"] = 1
    try:
        mark = marker()
        job = env["queue.celery.test.record"].with_delay(countdown=3).make(mark)
        env.cr.commit()
        wait_for_jobs(database, [job.id], states=("enqueued",))
        assert query(database, "SELECT date_enqueued FROM celery_job WHERE id = %s",
                     (job.id,)) == [(None,)]
        assert env["celery.job"]._cron_sweep() == 0  # not yet within the window
        env.cr.commit()
        time.sleep(2.5)
        assert env["celery.job"]._cron_sweep() == 1
        env.cr.commit()
        assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
        (started, eta), = query(
            database, "SELECT date_started, eta FROM celery_job WHERE id = %s", (job.id,))
        assert started >= eta
        assert count_rows(database, mark) == 1
    finally:
        del odoo.tools.config.options["celery_eta_window"]


def test_a_retry_is_published_once_its_job_lock_is_released(env, database, monkeypatch):
    """Run one attempt in this process: the retry it publishes must find the job free,
    or the worker that receives it drops it as running elsewhere and the job waits forever."""
    mark = marker()
    job = env["queue.celery.test.record"].with_delay(countdown=3600).make_after_retries(mark, 1)
    env.cr.commit()  # due after the eta window: it waits in the database, nobody runs it
    wait_for_jobs(database, [job.id], states=("enqueued",))
    (task_id,), = query(database, "UPDATE celery_job SET eta = NULL WHERE id = %s"
                                  " RETURNING celery_task_id", (job.id,))
    lock_free_when_published = []
    real_publish = celeryapp.publish

    def publish(dbname, dispatches):
        (locked,), = query(database, "SELECT pg_try_advisory_lock(%s, %s)"
                                     " AND pg_advisory_unlock(%s, %s)",
                           (RUNNING_LOCK, job.id) * 2)
        lock_free_when_published.append(locked)
        return real_publish(dbname, dispatches)

    monkeypatch.setattr(celeryapp, "publish", publish)
    runner.run_job(database, job.uuid, task_id, "pytest@" + socket.gethostname())
    assert lock_free_when_published == [True]
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert count_rows(database, mark) == 1
