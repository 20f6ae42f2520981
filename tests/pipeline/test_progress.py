"""What the Jobs screens learn live through Odoo's bus, from jobs on a real worker.

Progress is committed on a cursor of its own while the job's REPEATABLE READ transaction
is still open; the job's final ``done`` UPDATE must not fail on it.
"""
import json
import uuid

import pytest

from harness import bus_message, bus_payload, query, wait_for_jobs, web_client_polls

pytestmark = pytest.mark.usefixtures("worker")


def test_progress_reported_during_a_job_is_kept_and_the_job_ends_done(env, database):
    job = env["celery.job"].enqueue("celery.job", "report_progress", args=[40, "Page 2 of 5"])
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert query(database, "SELECT percent, message FROM celery_job_progress WHERE job_id = %s",
                 (job.id,)) == [(40.0, "Page 2 of 5")]
    messages = [json.loads(message) for message, in query(
        database, "SELECT message FROM bus_bus WHERE message LIKE %s",
        (f'%"celery.job.progress"%"id":{job.id},%',))]
    assert bus_message("celery.job.progress", {"id": job.id, "progress": 40.0,
                                               "message": "Page 2 of 5"}) in messages


def test_report_progress_outside_a_job_does_nothing(env):
    assert env["celery.job"].report_progress(10, "not in a job") is False


def ended_job_notices(database):
    """{job id: state} of the job-end notices on the bus."""
    notices = {}
    for text, in query(database, "SELECT message FROM bus_bus WHERE message LIKE '%celery.job%'"):
        kind, payload = bus_payload(json.loads(text))
        if kind == "celery.job":
            notices[payload["id"]] = payload["state"]
    return notices


def test_a_job_end_is_told_its_user_only_while_their_web_client_is_connected(env, database):
    Record = env["queue.celery.test.record"]
    unseen = Record.with_delay().make(uuid.uuid4().hex)
    env.cr.commit()
    assert wait_for_jobs(database, [unseen.id]) == {unseen.id: "done"}
    web_client_polls(env)
    env.cr.commit()
    try:
        seen = Record.with_delay().make_then_fail(uuid.uuid4().hex)
        env.cr.commit()
        assert wait_for_jobs(database, [seen.id]) == {seen.id: "failed"}
        notices = ended_job_notices(database)
        assert notices.get(seen.id) == "failed" and unseen.id not in notices
    finally:
        env["bus.presence"].search([("user_id", "=", env.uid)]).unlink()
        env.cr.commit()
