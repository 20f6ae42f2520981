"""Dependencies over XML-RPC against a real server: a job waits only for jobs its user may read."""
import xmlrpc.client

import pytest

from harness import ADMIN_UID, Client, query, wait_for_jobs


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
