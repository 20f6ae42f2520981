"""What an attacker tried from outside, over XML-RPC against a real server: each is refused.

A job manager who is not a settings administrator, a plain user, a portal user and a
manager of another company, each with their own password, against each other's jobs.
"""
import time
import uuid
import xmlrpc.client

import pytest

import odoo
from harness import ADMIN_UID, Client, as_user, environment, query, wait_for_jobs
from odoo import SUPERUSER_ID

# Fields that decide what a job runs, as whom, and where it stands.
GUARDED_FIELDS = {
    "user_id": SUPERUSER_ID, "company_id": 1, "model_name": "res.users",
    "method_name": "write", "record_ids": "[2]", "args": '[{"groups_id": [[4, 3]]}]',
    "kwargs": "{}", "context": "{}", "state": "failed", "queue": "high", "priority": 0,
    "eta": "2001-01-01 00:00:00", "max_retries": 99, "retry_count": 0, "time_limit": 1,
    "identity_key": "squat", "celery_task_id": "forged", "uuid": str(uuid.uuid4()),
    "name": "forged", "result": "null", "exc_info": "x", "retry_history": "x",
}


def test_a_job_manager_cannot_change_what_a_job_runs_or_as_whom(server, database, people):
    manager = Client(server, database, *people["manager"])
    job_id = manager("celery.job", "enqueue", "res.partner", "search_count", args=[[]])
    assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
    before = query(database, "SELECT * FROM celery_job WHERE id = %s", (job_id,))
    for field, value in GUARDED_FIELDS.items():
        with pytest.raises(xmlrpc.client.Fault, match="AccessError|not allowed"):
            manager("celery.job", "write", [job_id], {field: value})
    with pytest.raises(xmlrpc.client.Fault):
        manager("celery.job", "create", {"uuid": "x", "model_name": "res.users",
                                         "method_name": "write", "user_id": SUPERUSER_ID})
    with pytest.raises(xmlrpc.client.Fault):
        manager("celery.job", "copy", job_id, {"user_id": SUPERUSER_ID})
    assert query(database, "SELECT * FROM celery_job WHERE id = %s", (job_id,)) == before
    # Retry runs the job as it was enqueued: as the manager, who gains nothing.
    manager("celery.job", "button_done", [job_id])
    assert query(database, "SELECT state FROM celery_job WHERE id = %s", (job_id,)) == [("done",)]
    settings_group = query(database, "SELECT res_id FROM ir_model_data WHERE module = 'base'"
                                     " AND name = 'group_system'")[0][0]
    assert query(database, "SELECT 1 FROM res_groups_users_rel WHERE gid = %s AND uid = %s",
                 (settings_group, people["manager"][0])) == []


def test_progress_cannot_be_forged_over_rpc(server, database, people):
    plain = Client(server, database, *people["plain"])
    portal = Client(server, database, *people["portal"])
    job_id = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   countdown=3600)
    (job_uuid,), = query(database, "SELECT uuid FROM celery_job WHERE id = %s", (job_id,))
    assert plain("celery.job", "report_progress", 50, "forged",
                 context={"celery_job_uuid": job_uuid}) is False
    assert portal("celery.job", "report_progress", 50, "forged",
                  context={"celery_job_uuid": job_uuid}) is False
    assert query(database, "SELECT count(*) FROM celery_job_progress WHERE job_id = %s",
                 (job_id,)) == [(0,)]
    assert query(database, "SELECT count(*) FROM bus_bus WHERE message LIKE %s",
                 ("%forged%",)) == [(0,)]
    plain_manager = Client(server, database, *people["other_manager"])
    with pytest.raises(xmlrpc.client.Fault):
        plain_manager("celery.job.progress", "search_read", [], ["message", "job_id"])
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", [job_id])


def test_an_identity_key_is_the_callers_own(server, database, people):
    plain = Client(server, database, *people["plain"])
    manager = Client(server, database, *people["manager"])
    key = "sync-%s" % uuid.uuid4().hex
    squatted = manager("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                       countdown=3600, identity_key=key)
    mine = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                 countdown=3600, identity_key=key)
    assert mine != squatted
    assert plain("celery.job", "read", [mine], ["identity_key"])[0]["identity_key"] == key
    assert plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                 countdown=3600, identity_key=key) == mine
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel",
                                                    [mine, squatted])


def test_a_manager_of_another_company_sees_nothing_of_this_ones_jobs(server, database, people):
    plain = Client(server, database, *people["plain"])
    other = Client(server, database, *people["other_manager"])
    job_id = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   countdown=3600)
    assert other("celery.job", "search", [("id", "=", job_id)]) == []
    for call in (lambda: other("celery.job", "read", [job_id], ["name"]),
                 lambda: other("celery.job", "button_cancel", [job_id])):
        with pytest.raises(xmlrpc.client.Fault):
            call()
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", [job_id])


def test_init_and_private_methods_cannot_be_enqueued(server, database, people):
    plain = Client(server, database, *people["plain"])
    for method in ("init", "_auto_init", "_cron_cleanup"):
        with pytest.raises(xmlrpc.client.Fault, match="Private methods"):
            plain("celery.job", "enqueue", "res.partner", method)


def test_a_job_of_an_archived_user_fails_with_the_reason(server, database, people):
    with environment(database) as env:
        user = env["res.users"].with_context(no_reset_password=True).create({
            "name": "Leaving", "login": "leaving-%s" % uuid.uuid4().hex[:8],
            "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
        job = as_user(env["celery.job"], user).enqueue("res.partner", "search_count",
                                                       args=[[]], countdown=2)
        user.active = False
    assert wait_for_jobs(database, [job.id]) == {job.id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "is archived" in exc_info


def test_a_job_blocked_on_a_row_lock_ends_within_its_time_limit(server, database, env):
    partner = env["res.partner"].create({"name": "Locked"})
    env.cr.commit()
    locker = odoo.sql_db.db_connect(database).cursor()
    try:
        locker.execute("SELECT id FROM res_partner WHERE id = %s FOR UPDATE", (partner.id,))
        job = partner.with_delay(time_limit=3).write({"comment": "blocked"})
        env.cr.commit()
        started = time.time()
        assert wait_for_jobs(database, [job.id], timeout=30) == {job.id: "failed"}
        assert time.time() - started < 3 + 3
    finally:
        locker.rollback()
        locker.close()
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "time limit of 3 s" in exc_info


def test_a_job_runs_in_the_company_it_was_enqueued_in(server, database, env):
    company_b = env["res.company"].create({"name": "Company B %s" % uuid.uuid4().hex})
    company_a = env.ref("base.main_company")
    user = env["res.users"].with_context(no_reset_password=True).create({
        "name": "Switcher", "login": "switcher-%s" % uuid.uuid4().hex[:8],
        "company_id": company_a.id, "company_ids": [(6, 0, [company_a.id, company_b.id])],
        "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
    name = "Made in A %s" % uuid.uuid4().hex
    # An attachment's company defaults to the current one on every Odoo version.
    job = as_user(env["celery.job"], user).enqueue("ir.attachment", "create",
                                                   args=[{"name": name}], countdown=2)
    user.company_id = company_b
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert query(database, "SELECT company_id FROM ir_attachment WHERE name = %s",
                 (name,)) == [(company_a.id,)]


def test_a_corrupt_stored_context_fails_at_once_with_the_reason(server, database, env):
    job = env["res.partner"].with_delay(countdown=2).search_count([])
    env.cr.commit()
    env.cr.execute("UPDATE celery_job SET context = '{not json' WHERE id = %s", (job.id,))
    env.cr.commit()
    assert wait_for_jobs(database, [job.id], timeout=20) == {job.id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "JSONDecodeError" in exc_info and "worker" not in exc_info


def test_a_job_enqueued_in_a_rolled_back_savepoint_is_never_published(server, database, env):
    with pytest.raises(RuntimeError), env.cr.savepoint():
        job = env["res.partner"].with_delay().search_count([])
        job_uuid = job.uuid
        raise RuntimeError("rolled back")
    kept = env["res.partner"].with_delay().search_count([])
    env.cr.commit()
    assert wait_for_jobs(database, [kept.id]) == {kept.id: "done"}
    assert job_uuid not in server.output()
    assert query(database, "SELECT count(*) FROM celery_job WHERE uuid = %s", (job_uuid,)) == [(0,)]


def test_retrying_a_job_whose_key_a_newer_job_holds_says_so(server, database, people):
    admin = Client(server, database, ADMIN_UID, "admin")
    key = "k-%s" % uuid.uuid4().hex
    first = admin("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                  countdown=3600, identity_key=key)
    admin("celery.job", "button_cancel", [first])
    second = admin("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   countdown=3600, identity_key=key)
    with pytest.raises(xmlrpc.client.Fault, match="identity key .* of job %d" % second):
        admin("celery.job", "button_retry", [first])
    assert query(database, "SELECT state FROM celery_job WHERE id = %s", (first,)) == [
        ("cancelled",)]
    admin("celery.job", "button_cancel", [second])
