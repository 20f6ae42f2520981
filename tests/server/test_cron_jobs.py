"""Scheduled actions that run as jobs, on a real server: Odoo's own cron code runs the cron,
which enqueues a job that the server's Celery workers run to done as the cron's user; and
over XML-RPC, the cron's new settings and its job's method stay out of reach."""
import datetime
import uuid
import xmlrpc.client

import pytest

from harness import ADMIN_UID, Client, as_user, environment, query, run_due_crons, wait_for_jobs


def make_cron(database, marker, user_id, **values):
    """A cron of ``user_id`` that writes a test row ``marker`` with the uuid of the job that
    runs it (none outside a job); its id."""
    with environment(database) as env:
        return env["ir.cron"].create(dict({
            "name": "Make %s" % marker,
            "model_id": env.ref("queue_celery_test_jobs.model_queue_celery_test_record").id,
            "state": "code", "user_id": user_id, "interval_number": 1, "interval_type": "days",
            "code": "model.make(%r, env.context.get('celery_job_uuid'))" % marker,
            "celery_run_as_job": True}, **values)).id


def cron_jobs(database, cron_id):
    return query(database, "SELECT id, user_id, queue, method_name, uuid FROM celery_job"
                           " WHERE model_name = 'ir.cron' AND record_ids = %s ORDER BY id",
                 ("[%d]" % cron_id,))


def made(database, marker):
    return query(database, "SELECT value, create_uid FROM queue_celery_test_record"
                           " WHERE marker = %s", (marker,))


def test_a_due_cron_enqueues_a_job_that_a_worker_runs_as_the_crons_user(server, database):
    marker = uuid.uuid4().hex
    cron_id = make_cron(database, marker, ADMIN_UID, celery_queue="default",
                        nextcall=datetime.datetime.utcnow() - datetime.timedelta(minutes=1))
    try:
        run_due_crons(database)
        (job_id, user_id, queue, method, job_uuid), = cron_jobs(database, cron_id)
        assert (user_id, queue, method) == (ADMIN_UID, "default", "_celery_run_cron_job")
        assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
        # One row, by the job (the cron running the action itself would write None).
        assert made(database, marker) == [(repr(job_uuid), ADMIN_UID)]
        # Rescheduled as any cron: not due again, no second job.
        run_due_crons(database)
        assert len(cron_jobs(database, cron_id)) == 1
    finally:
        query(database, "UPDATE ir_cron SET active = false WHERE id = %s", (cron_id,))


def test_run_manually_over_rpc_enqueues_the_job_and_a_worker_runs_it(server, database):
    marker = uuid.uuid4().hex
    cron_id = make_cron(database, marker, ADMIN_UID, active=False)
    Client(server, database, ADMIN_UID, "admin")("ir.cron", "method_direct_trigger", [cron_id])
    (job_id, user_id, _queue, _method, job_uuid), = cron_jobs(database, cron_id)
    assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
    assert made(database, marker) == [(repr(job_uuid), ADMIN_UID)]


def test_over_rpc_only_administrators_set_it_and_nobody_calls_the_jobs_method(server, database,
                                                                                people):
    marker = uuid.uuid4().hex
    cron_id = make_cron(database, marker, ADMIN_UID, active=False)
    admin = Client(server, database, ADMIN_UID, "admin")
    for role in ("manager", "plain", "portal"):
        attacker = Client(server, database, *people[role])
        with pytest.raises(xmlrpc.client.Fault, match="AccessError|not allowed"):
            attacker("ir.cron", "write", [cron_id], {"celery_queue": "high"})
        with pytest.raises(xmlrpc.client.Fault, match="AccessError|not allowed"):
            attacker("ir.cron", "create", {"name": "x", "celery_run_as_job": True,
                                           "model_id": 1, "user_id": people[role][0]})
        with pytest.raises(xmlrpc.client.Fault, match="[Pp]rivate method"):
            attacker("ir.cron", "_celery_run_cron_job", [cron_id])
        with pytest.raises(xmlrpc.client.Fault):
            attacker("ir.cron", "method_direct_trigger", [cron_id])
    with pytest.raises(xmlrpc.client.Fault, match="[Pp]rivate method"):
        admin("ir.cron", "_celery_run_cron_job", [cron_id])
    with pytest.raises(xmlrpc.client.Fault, match="Private methods"):
        admin("celery.job", "enqueue", "ir.cron", "_celery_run_cron_job", record_ids=[cron_id])
    # Not even an administrator makes a cron's job run as a user who is not one.
    with pytest.raises(xmlrpc.client.Fault, match="must be an administrator or the superuser"):
        admin("ir.cron", "write", [cron_id], {"user_id": people["manager"][0]})
    assert cron_jobs(database, cron_id) == []
    assert made(database, marker) == []
    with environment(database) as env:
        assert as_user(env["ir.cron"], ADMIN_UID).browse(cron_id).user_id.id == ADMIN_UID
