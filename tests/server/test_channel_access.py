"""Channels, job functions and the Related button over XML-RPC against a real server: job
users read them, only job managers change them, and jobs run within their channel."""
import time
import uuid
import xmlrpc.client

import pytest

from harness import ADMIN_UID, Client, environment, query, wait_for_jobs


@pytest.fixture(scope="module")
def channel(database):
    name = "root.rpc%s" % uuid.uuid4().hex[:8]
    with environment(database) as env:
        record = env["celery.job.channel"].create({"name": name, "capacity": 1})
        return record.id, name


def test_job_users_read_channels_and_functions_and_only_managers_change_them(
        server, database, people, channel):
    channel_id, name = channel
    plain = Client(server, database, *people["plain"])
    portal = Client(server, database, *people["portal"])
    manager = Client(server, database, *people["manager"])
    plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]], countdown=3600)
    function_id, = plain("celery.job.function", "search",
                         [("model_name", "=", "res.partner"), ("method_name", "=", "search_count")])
    assert plain("celery.job.channel", "read", [channel_id], ["name"])[0]["name"] == name
    for call in (
            lambda: plain("celery.job.channel", "write", [channel_id], {"capacity": 0}),
            lambda: plain("celery.job.channel", "button_pause", [channel_id]),
            lambda: plain("celery.job.channel", "button_resume", [channel_id]),
            lambda: plain("celery.job.channel", "create", {"name": name + ".mine"}),
            lambda: plain("celery.job.channel", "unlink", [channel_id]),
            lambda: plain("celery.job.function", "write", [function_id], {"max_retries": 0}),
            lambda: plain("celery.job.function", "create",
                          {"model_name": "res.users", "method_name": "write"}),
            lambda: portal("celery.job.channel", "read", [channel_id], ["name"]),
            lambda: portal("celery.job.function", "read", [function_id], ["name"]),
            lambda: portal("celery.job.channel", "button_pause", [channel_id])):
        with pytest.raises(xmlrpc.client.Fault):
            call()
    assert query(database, "SELECT capacity, paused FROM celery_job_channel WHERE id = %s",
                 (channel_id,)) == [(1, False)]
    manager("celery.job.function", "write", [function_id], {"retry_pattern": "{1: 5}"})
    with pytest.raises(xmlrpc.client.Fault, match="Retry pattern"):
        manager("celery.job.function", "write", [function_id], {"retry_pattern": "os.system"})


def test_a_job_enqueued_over_rpc_in_a_channel_waits_while_it_is_paused(
        server, database, people, channel):
    channel_id, name = channel
    plain = Client(server, database, *people["plain"])
    manager = Client(server, database, *people["manager"])
    with pytest.raises(xmlrpc.client.Fault, match="Unknown channel"):
        plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
              channel=name + ".nowhere")
    manager("celery.job.channel", "button_pause", [channel_id])
    job_id = plain("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                   channel=name)
    assert isinstance(job_id, int)
    assert plain("celery.job", "read", [job_id], ["channel_id"])[0]["channel_id"][0] == channel_id
    time.sleep(5)
    assert query(database, "SELECT state FROM celery_job WHERE id = %s", (job_id,)) \
        == [("enqueued",)]
    manager("celery.job.channel", "button_resume", [channel_id])
    assert wait_for_jobs(database, [job_id]) == {job_id: "done"}


def test_the_related_button_opens_only_what_the_user_may_read(server, database, people):
    plain = Client(server, database, *people["plain"])
    other = Client(server, database, *people["other_manager"])
    partner_id, = plain("res.partner", "search", [], limit=1)
    job_id = plain("celery.job", "enqueue", "res.partner", "read", args=[["name"]],
                   record_ids=[partner_id], countdown=3600)
    action = plain("celery.job", "button_related", [job_id])
    assert (action["res_model"], action["res_id"]) == ("res.partner", partner_id)
    with pytest.raises(xmlrpc.client.Fault):
        other("celery.job", "button_related", [job_id])
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", [job_id])


def test_the_related_action_of_a_function_opens_what_it_returns(server, database, people):
    plain = Client(server, database, *people["plain"])
    manager = Client(server, database, *people["manager"])
    row = plain("queue.celery.test.record", "create", {"marker": "related"})
    job_id = plain("celery.job", "enqueue", "queue.celery.test.record", "read", args=[["marker"]],
                   record_ids=[row], countdown=3600)
    function_id, = manager("celery.job.function", "search",
                           [("model_name", "=", "queue.celery.test.record"),
                            ("method_name", "=", "read")])
    with pytest.raises(xmlrpc.client.Fault, match="related_action"):
        manager("celery.job.function", "write", [function_id], {"related_action": "unlink"})
    manager("celery.job.function", "write", [function_id],
            {"related_action": "related_action_open_marker"})
    action = plain("celery.job", "button_related", [job_id])
    assert action["domain"] == [["marker", "in", ["related"]]]
    assert plain("queue.celery.test.record", "search", [("id", "=", row)]) == [row]
    Client(server, database, ADMIN_UID, "admin")("celery.job", "button_cancel", [job_id])
