"""Bad input: a clear error and no half-written job; what JSON carries comes back as given."""
import datetime
import uuid
import xmlrpc.client
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import ADMIN_UID, Client, count_rows, query, wait_for_jobs
from odoo.addons.queue_celery.core import encoding

SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
           | st.binary(max_size=4) | st.decimals() | st.dates()
           | st.datetimes(timezones=st.none() | st.just(datetime.UTC)))
VALUES = st.recursive(SCALARS, lambda children: (
    st.lists(children, max_size=4) | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=4)),
    max_leaves=12)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(VALUES)
def test_arguments_round_trip_through_json_or_are_refused(value):
    try:
        text = encoding.dumps(value)
    except ValueError:
        return
    assert encoding.loads(text) == value


def test_refused_inputs_over_rpc_leave_no_job(server, database):
    admin = Client(server, database, ADMIN_UID, "admin")
    before = query(database, "SELECT count(*) FROM celery_job")
    nested = []
    for _level in range(150):
        nested = [nested]
    for args, kwargs, message in (
            (["res.partner", "search"], {"args": ["x" * (10 * 2 ** 20)]}, "more than"),
            (["res.partner", "search"], {"max_retries": -1}, "max_retries"),
            (["res.partner", "search"], {"queue": "urgent"}, "Unknown queue"),
            (["no.model", "search"], {}, "Unknown model"),
            (["res.partner", "no_method"], {}, "has no method"),
            (["res.partner", "search"], {"eta": "someday"}, "not a date and time"),
            (["res.partner", "search"], {"eta": "2030-01-01 00:00:00 and more"},
             "not a date and time"),
            (["res.partner", "search"], {"countdown": 1e300}, "countdown must be"),
            (["res.partner", "search"], {"countdown": -1e12}, "countdown must be"),
            (["res.partner", 42], {}, "method_name must be"),
            (["res.partner", "search"], {"args": "abc"}, "args must be a list"),
            (["res.partner", "search"], {"args": [nested]}, "nested more than"),
            (["res.partner", "search"], {"context": {"big": "x" * (6 * 2 ** 20)}},
             "arguments and context take")):
        with pytest.raises(xmlrpc.client.Fault, match=message):
            admin("celery.job", "enqueue", *args, **kwargs)
    # XML-RPC cannot carry integers past 32 bits; JSON-RPC can.
    for option in ("max_retries", "time_limit", "priority"):
        with pytest.raises(RuntimeError, match="%s must be" % option):
            server.rpc(database, "celery.job", "enqueue", "res.partner", "search",
                       **{option: 2 ** 40})
    assert query(database, "SELECT count(*) FROM celery_job") == before
    assert "bad query" not in server.output()


def test_an_eta_given_with_an_offset_or_as_xmlrpc_datetime_is_taken_as_that_moment(server,
                                                                                   database):
    admin = Client(server, database, ADMIN_UID, "admin")
    with_offset = admin("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                        eta="2199-01-01T12:00:00+02:00")
    as_datetime = admin("celery.job", "enqueue", "res.partner", "search_count", args=[[]],
                        eta=xmlrpc.client.DateTime("21990101T10:00:00"))
    assert query(database, "SELECT eta::text FROM celery_job WHERE id IN %s ORDER BY id",
                 ((with_offset, as_datetime),)) == [("2199-01-01 10:00:00",)] * 2
    admin("celery.job", "button_cancel", [with_offset, as_datetime])


def test_eta_in_the_past_runs_now_and_far_future_waits_in_the_database(server, database, env):
    mark = uuid.uuid4().hex
    past = env["queue.celery.test.record"].with_delay(
        eta=datetime.datetime(2001, 1, 1)).make(mark)
    future = env["queue.celery.test.record"].with_delay(
        eta=datetime.datetime(2199, 1, 1)).make(mark)
    env.cr.commit()
    assert wait_for_jobs(database, [past.id]) == {past.id: "done"}
    assert query(database, "SELECT state, date_enqueued FROM celery_job WHERE id = %s",
                 (future.id,)) == [("enqueued", None)]
    future.button_cancel()
    env.cr.commit()
    assert count_rows(database, mark) == 1


def test_a_job_whose_records_were_deleted_fails_clearly(server, database, env):
    record = env["queue.celery.test.record"].create({"marker": uuid.uuid4().hex})
    job = record.with_delay(countdown=1).write({"value": "late"})
    record.unlink()
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "were deleted before it ran" in exc_info


def test_decimal_and_dates_reach_the_job_as_given(server, database, env):
    mark = uuid.uuid4().hex
    value = {"amount": Decimal("1.10"), "day": datetime.date(2024, 2, 29), "pair": (1, 2)}
    job = env["queue.celery.test.record"].with_delay().make(mark, value)
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    assert query(database, "SELECT value FROM queue_celery_test_record WHERE marker = %s",
                 (mark,)) == [(repr(value),)]
