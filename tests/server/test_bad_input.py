"""Bad input: a clear error and no half-written job; what JSON carries comes back as given."""
import datetime
import uuid
import xmlrpc.client
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Client, count_rows, query, wait_for_jobs
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
    admin = Client(server, database, 1, "admin")
    before = query(database, "SELECT count(*) FROM celery_job")
    for args, kwargs, message in (
            (["res.partner", "search"], {"args": ["x" * (10 * 2 ** 20)]}, "more than"),
            (["res.partner", "search"], {"max_retries": -1}, "max_retries"),
            (["res.partner", "search"], {"queue": "urgent"}, "Unknown queue"),
            (["no.model", "search"], {}, "Unknown model"),
            (["res.partner", "no_method"], {}, "has no method"),
            (["res.partner", "search"], {"eta": "someday"}, "not a datetime")):
        with pytest.raises(xmlrpc.client.Fault, match=message):
            admin("celery.job", "enqueue", *args, **kwargs)
    assert query(database, "SELECT count(*) FROM celery_job") == before


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
