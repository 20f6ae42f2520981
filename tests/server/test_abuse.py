"""Abuse over XML-RPC, as real clients would try it: a plain user against others' jobs."""
import xmlrpc.client

import pytest

from harness import Client, query, wait_for_jobs


def test_a_plain_user_cannot_touch_another_users_job(server, database, users):
    alice = Client(server, database, *users["alice"])
    mallory = Client(server, database, *users["mallory"])
    job_id = alice("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   countdown=3600)
    assert mallory("celery.job", "search", [("id", "=", job_id)]) == []
    for call in (lambda: mallory("celery.job", "read", [job_id], ["args"]),
                 lambda: mallory("celery.job", "button_retry", [job_id]),
                 lambda: mallory("celery.job", "button_cancel", [job_id]),
                 lambda: mallory("celery.job", "button_done", [job_id]),
                 lambda: mallory("celery.job", "unlink", [job_id]),
                 lambda: mallory("celery.job", "write", [job_id], {"state": "done"}),
                 lambda: alice("celery.job", "write", [job_id], {"user_id": 1}),
                 lambda: alice("celery.job", "write", [job_id], {"method_name": "unlink"}),
                 lambda: alice("celery.job", "button_done", [job_id]),
                 lambda: alice("celery.job", "create", {
                     "uuid": "forged", "model_name": "res.users", "method_name": "unlink",
                     "user_id": 1})):
        with pytest.raises(xmlrpc.client.Fault):
            call()
    assert query(database, "SELECT state, user_id, method_name FROM celery_job WHERE id = %s",
                 (job_id,)) == [("enqueued", users["alice"][0], "search_count")]


def test_a_plain_user_cannot_enqueue_past_their_rights(server, database, users):
    mallory = Client(server, database, *users["mallory"])
    for model, method, message in (("ir.config_parameter", "search_read", "not allowed"),
                                   ("res.partner", "_compute_display_name", "Private method"),
                                   ("celery.job", "_cron_cleanup", "Private method")):
        with pytest.raises(xmlrpc.client.Fault, match=message):
            mallory("celery.job", "enqueue", model, method)
    with pytest.raises(xmlrpc.client.Fault):
        mallory("celery.job", "_enqueue", "res.partner", [], "unlink")
    # What the rights forbid at run time fails at run time, as the user.
    job_id = mallory("celery.job", "enqueue", "res.users", "write", args=[{"login": "owned"}],
                     record_ids=[1])
    assert wait_for_jobs(database, [job_id]) == {job_id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job_id,))
    assert "AccessError" in exc_info
    assert query(database, "SELECT login FROM res_users WHERE id = 1") != [("owned",)]
