"""Dependencies over XML-RPC against a real server: a job waits only for jobs its user may read."""
import xmlrpc.client

import pytest

from harness import ADMIN_UID, Client, environment, query, wait_for_jobs
from odoo.addons.queue_celery import group


def test_a_dependency_on_another_users_job_is_refused(server, database, people):
    plain = Client(server, database, *people["plain"])
    manager = Client(server, database, *people["manager"])
    others = manager("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                     countdown=3600)
    with pytest.raises(xmlrpc.client.Fault,
                       match="security restrictions|AccessError|doesn.t have .read. access"):
        plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
              depends_on=[others])
    for bad in ([999999999], ["1"], 7):
        with pytest.raises(xmlrpc.client.Fault):
            plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                  depends_on=bad)
    # Their own job: the new job waits for it, and runs once it is done.
    first = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]])
    second = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   depends_on=[first])
    assert isinstance(second, int)
    assert wait_for_jobs(database, [first, second]) == {first: "done", second: "done"}
    (started,), = query(database, "SELECT date_started FROM celery_job WHERE id = %s", (second,))
    (done,), = query(database, "SELECT date_done FROM celery_job WHERE id = %s", (first,))
    assert started > done
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", [others])


def test_a_batch_is_seen_by_its_user_and_their_companys_managers_only(server, database, people):
    with environment(database, people["plain"][0]) as env:
        partners = env["res.partner"].search([], limit=1)
        jobs = group(partners.delayable(countdown=3600).read(["name"]),
                     partners.delayable(countdown=3600).read(["name"])).delay("Secret batch")
        batch_id, job_ids = jobs[0].batch_id.id, jobs.ids
    plain = Client(server, database, *people["plain"])
    assert plain("celery.job.batch", "read", [batch_id], ["name"])[0]["name"] == "Secret batch"
    for call in (lambda: plain("celery.job.batch", "write", [batch_id], {"user_id": ADMIN_UID}),
                 lambda: plain("celery.job.batch", "unlink", [batch_id])):
        with pytest.raises(xmlrpc.client.Fault):
            call()
    other = Client(server, database, *people["other_manager"])
    portal = Client(server, database, *people["portal"])
    assert other("celery.job.batch", "search", [("id", "=", batch_id)]) == []
    for call in (lambda: other("celery.job.batch", "read", [batch_id], ["name"]),
                 lambda: portal("celery.job.batch", "read", [batch_id], ["name"])):
        with pytest.raises(xmlrpc.client.Fault):
            call()
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", job_ids)
