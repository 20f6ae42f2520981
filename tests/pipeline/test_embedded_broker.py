"""The embedded broker's acknowledgements, on real PostgreSQL: a delivered message stays
reserved until acknowledged, and comes back when its consumer dies, closes or times out.

The first tests drive kombu connections of this process to the embedded broker; the
last ones real ``odoo celery worker`` processes, killed or stopped while they hold jobs.
"""
import collections
import gc
import os
import signal
import threading
import time
import uuid

import kombu
import pytest

import odoo
from harness import Worker, count_rows, query, use_broker, wait_for_jobs
from odoo.addons.queue_celery.core import broker, celeryapp
from odoo.addons.queue_celery.core.settings import option


@pytest.fixture(autouse=True)
def embedded():
    use_broker("")


def connection(**transport_options):
    """A kombu connection to the embedded broker of this run."""
    return kombu.Connection(celeryapp.broker_url(), transport_options=transport_options)


@pytest.fixture
def name():
    """A new queue's name; the queue and its messages are dropped after the test."""
    name = "qc-pytest-broker-%s" % uuid.uuid4().hex
    yield name
    query(option("broker_db"), "DELETE FROM kombu_message WHERE queue_id IN"
                               " (SELECT id FROM kombu_queue WHERE name = %s)", (name,))
    query(option("broker_db"), "DELETE FROM kombu_queue WHERE name = %s", (name,))


def messages(queue, broker_db=None):
    """{'waiting': n, 'reserved': n}: the rows of ``queue`` in the broker's message table."""
    rows = query(broker_db or option("broker_db"),
                 "SELECT CASE WHEN m.visible THEN 'waiting' ELSE 'reserved' END, count(*)"
                 " FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id"
                 " WHERE q.name = %s GROUP BY 1", (queue,))
    return dict({"waiting": 0, "reserved": 0}, **dict(rows))


def test_a_delivered_message_stays_reserved_until_acked_then_leaves_no_row(name):
    with connection() as conn, conn.SimpleQueue(name) as queue:
        queue.put({"n": 1})
        queue.put({"n": 2})
        first = queue.get(timeout=5)
        assert first.payload == {"n": 1}
        assert messages(name) == {"waiting": 1, "reserved": 1}
        first.ack()
        second = queue.get(timeout=5)
        second.ack()
        assert second.payload == {"n": 2}
        assert messages(name) == {"waiting": 0, "reserved": 0}


def test_puts_wait_for_the_disk_claims_and_acknowledgements_do_not(name):
    setting = "SELECT current_setting('synchronous_commit')"
    for _run in range(2):  # the second on connections the engine's pool lends again
        with connection() as conn, conn.SimpleQueue(name) as queue:
            queue.put({"n": 1})
            queue.get(timeout=5).ack()
            channel = queue.channel
            assert [tuple(row) for row in channel._puts.execute(setting, {})] == [("on",)]
            for statements in (channel._claims, channel.qos.statements):
                assert [tuple(row) for row in statements.execute(setting, {})] == [("off",)]


def test_a_message_unacked_past_its_visibility_timeout_is_delivered_again(name):
    with connection(visibility_timeout=1) as holder, connection() as other, \
            holder.SimpleQueue(name) as held_queue, other.SimpleQueue(name) as other_queue:
        held_queue.put({"n": 1})
        held = held_queue.get(timeout=5)
        taken = time.monotonic()
        # Its consumer lives: nobody else gets it before its deadline.
        with pytest.raises(other_queue.Empty):
            other_queue.get(timeout=0.5)
        again = other_queue.get(timeout=5)
        assert again.payload == held.payload and time.monotonic() - taken >= 1
        again.ack()
        held.ack()  # late: the message is gone already
        assert messages(name) == {"waiting": 0, "reserved": 0}


def test_rejected_with_requeue_or_closed_unacked_the_message_comes_back_at_once(name):
    with connection() as other, other.SimpleQueue(name) as other_queue:
        with connection() as conn, conn.SimpleQueue(name) as queue:
            queue.put({"n": 1})
            queue.put({"n": 2})
            queue.get(timeout=5).requeue()
            assert queue.get(timeout=5).payload == {"n": 1}  # in its place, first
            assert queue.get(timeout=5).payload == {"n": 2}
            assert messages(name) == {"waiting": 0, "reserved": 2}
        # Closed (as a worker's warm shutdown closes it): its unacked messages are back.
        assert messages(name) == {"waiting": 2, "reserved": 0}
        got = [other_queue.get(timeout=5) for _ in range(2)]
        assert [message.payload for message in got] == [{"n": 1}, {"n": 2}]
        for message in got:
            message.ack()
        assert messages(name) == {"waiting": 0, "reserved": 0}


def test_a_message_consumed_without_acks_is_deleted_as_it_is_delivered(name):
    with connection() as conn:
        queue = kombu.Queue(name, kombu.Exchange(name), routing_key=name)
        with conn.Producer() as producer:
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name,
                             declare=[queue])
            producer.publish({"n": 2}, exchange=queue.exchange, routing_key=name)
        got = []
        with conn.Consumer(queue, no_ack=True, callbacks=[lambda body, _m: got.append(body)]):
            conn.drain_events(timeout=5)
        assert got == [{"n": 1}]
        assert queue(conn.default_channel).get(no_ack=True).payload == {"n": 2}
        assert messages(name) == {"waiting": 0, "reserved": 0}


def test_a_producer_batch_puts_its_messages_in_one_statement_in_their_order(name):
    with connection() as conn, conn.SimpleQueue(name) as queue:
        channel = queue.producer.channel
        puts = []
        put_rows = channel.put_rows
        channel.put_rows = lambda rows: (puts.append(len(rows)), put_rows(rows))
        try:
            with queue.producer.batch():
                for n in range(5):
                    queue.put({"n": n})
                assert messages(name) == {"waiting": 0, "reserved": 0}
        finally:
            del channel.put_rows  # no cycle left for the garbage collector to close later
        assert puts == [5]
        received = [queue.get(timeout=5) for _ in range(5)]
        for message in received:
            message.ack()
        assert [message.payload["n"] for message in received] == list(range(5))


def table_options(dbname):
    """The storage options of the broker's message table in ``dbname``."""
    return set(query(dbname, "SELECT reloptions FROM pg_class"
                             " WHERE oid = 'kombu_message'::regclass")[0][0] or ())


def test_a_broker_database_of_an_earlier_version_is_upgraded_in_place(name):
    dbname = "qc_pytest_old_broker_%d" % os.getpid()
    odoo.tools.config["celery_broker_db"] = dbname
    try:
        url = celeryapp.broker_url()  # creates the database
            # The tables of kombu's own transport, as earlier versions made them, with a message.
        with kombu.Connection(url.replace("odoopg+", "sqla+")) as old, \
                old.SimpleQueue(name) as old_queue:
            old_queue.put({"n": 1})
        with kombu.Connection(url) as conn, conn.SimpleQueue(name) as queue:
            message = queue.get(timeout=5)
            assert message.payload == {"n": 1}
            assert messages(name, dbname) == {"waiting": 0, "reserved": 1}
            message.ack()
        assert messages(name, dbname) == {"waiting": 0, "reserved": 0}
        indexes = {row[0] for row in query(
            dbname, "SELECT indexname FROM pg_indexes WHERE tablename = 'kombu_message'")}
        assert {"kombu_message_ordered", "kombu_message_reserved"} <= indexes
        assert "kombu_message_waiting" not in indexes
        assert set(broker.QUEUE_TABLE_OPTIONS) <= table_options(dbname)
        # A table with every index but no options (the version before them) gets them.
        query(dbname, "ALTER TABLE kombu_message RESET (autovacuum_vacuum_scale_factor,"
                      " autovacuum_analyze_scale_factor)")
        broker._upgraded.clear()
        with kombu.Connection(url) as conn, conn.SimpleQueue(name) as queue:
            queue.put({"n": 2})
            queue.get(timeout=5).ack()
        assert set(broker.QUEUE_TABLE_OPTIONS) <= table_options(dbname)
    finally:
        odoo.tools.config["celery_broker_db"] = ""
        for key in [key for key in broker.Channel._engines if dbname in key]:
            broker.Channel._engines.pop(key)[0].dispose()
        # Sessions of the closed connections given back now, while their backends live:
        # the garbage collector would reset them later, failing and logging amid whatever
        # runs then (Python 3.11.7 fails an import that this interrupts).
        gc.collect()
        query("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % dbname)


def test_a_queue_delivers_by_priority_zero_first_then_in_the_order_put(name):
    with connection() as conn, conn.SimpleQueue(name) as queue:
        for n, priority in enumerate((5, 9, 0, 5, 0)):
            queue.put({"n": n}, priority=priority)
        got = []
        for _ in range(5):
            message = queue.get(timeout=5)
            message.ack()
            got.append(message.payload["n"])
        assert got == [2, 4, 0, 3, 1]


def put_later(url, name, payload, delay=0.5):
    """Put ``payload`` on the queue ``name`` of ``url`` after ``delay`` s, from a thread."""
    def put():
        time.sleep(delay)
        with kombu.Connection(url) as conn, conn.SimpleQueue(name) as queue:
            queue.put(payload)
            put_at.append(time.monotonic())
    put_at = []
    thread = threading.Thread(target=put, daemon=True)
    thread.start()
    return thread, put_at


def test_a_waiting_consumer_is_woken_by_the_put_not_by_its_polling_interval(name):
    with connection(polling_interval=60) as conn, conn.SimpleQueue(name) as queue:
        with pytest.raises(queue.Empty):  # the queue exists and its consumer listens
            queue.get(timeout=0.2)
        thread, put_at = put_later(celeryapp.broker_url(), name, {"n": 1})
        message = queue.get(timeout=30)
        delivered_at = time.monotonic()
        thread.join(5)
        message.ack()
        # Generous for a loaded machine, far below the polling interval.
        assert message.payload == {"n": 1} and delivered_at - put_at[0] < 5


def test_without_a_notification_a_consumer_still_finds_messages_by_polling(name):
    url = celeryapp.broker_url()
    with connection(polling_interval=0.5) as conn, conn.SimpleQueue(name) as queue:
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.2)
        # kombu's own transport puts without a NOTIFY, as a lost notification.
        thread, _put_at = put_later(url.replace("odoopg+", "sqla+"), name, {"n": 1})
        assert queue.get(timeout=30).payload == {"n": 1}
        thread.join(5)
        # Its listening connection killed: it polls, then listens again on a new one.
        listener = queue.channel._listener
        query(option("broker_db"), "SELECT pg_terminate_backend(%s)",
              (listener.get_backend_pid(),))
        thread, _put_at = put_later(url, name, {"n": 2})
        message = queue.get(timeout=30)
        thread.join(5)
        message.ack()
        assert message.payload == {"n": 2}
        assert queue.channel._listener not in (None, listener)


def test_an_empty_queue_is_claimed_from_again_only_once_notified(name):
    # A consumer of a busy queue and an empty one: the empty one costs a claim (a round
    # trip) when first found empty, not one per message of the other.
    empty = name + "-empty"
    received = []
    with connection(polling_interval=60) as conn:
        channel = conn.channel()
        claims = collections.Counter()
        claim = channel._claim

        def counted_claim(queue, statement):
            claims[queue] += 1
            return claim(queue, statement)

        channel._claim = counted_claim
        queues = [kombu.Queue(queue_name, kombu.Exchange(queue_name), routing_key=queue_name)
                  for queue_name in (name, empty)]
        try:
            with kombu.Consumer(channel, queues, callbacks=[lambda body, message: (
                    received.append(body), message.ack())]):
                with pytest.raises(TimeoutError):  # both exist, and their consumer listens
                    conn.drain_events(timeout=0.5)
                with conn.Producer() as producer:
                    for n in range(20):
                        producer.publish({"n": n}, exchange=name, routing_key=name)
                while len(received) < 20:
                    conn.drain_events(timeout=10)
                assert claims[empty] <= 2
                # Put on the empty queue, it is claimed from again at once: its NOTIFY.
                thread, _put_at = put_later(celeryapp.broker_url(), empty, {"n": "late"})
                conn.drain_events(timeout=30)
                thread.join(5)
        finally:
            del channel._claim  # no cycle left for the garbage collector to close later
            channel.close()
        assert received[-1] == {"n": "late"}
    query(option("broker_db"), "DELETE FROM kombu_queue WHERE name = %s", (empty,))


def job_states(database, ids):
    return {state for state, in query(database, "SELECT state FROM celery_job WHERE id IN %s",
                                      (tuple(ids),))}


def enqueue_held_jobs(env, database):
    """Jobs the worker holds without having run them: ten waiting for their eta in 15 s,
    one running (a 10 s job). Return (prefix of their markers, job ids)."""
    prefix = uuid.uuid4().hex
    model = env["queue.celery.test.record"]
    running = model.with_delay().sleep_then_make(prefix + "-running", 10)
    env.cr.commit()
    wait_for_jobs(database, [running.id], states=("started",), timeout=30)
    jobs = [model.with_delay(countdown=15).make("%s-%d" % (prefix, i)) for i in range(10)]
    env.cr.commit()
    ids = [running.id] + [job.id for job in jobs]
    deadline = time.time() + 10
    while messages(celeryapp.queue_name("default"))["waiting"] and time.time() < deadline:
        time.sleep(0.1)
    assert not messages(celeryapp.queue_name("default"))["waiting"]
    time.sleep(0.5)  # the worker hands them to its timer and pool
    assert job_states(database, ids) == {"started", "enqueued"}
    return prefix, ids


def assert_each_ran_once(database, prefix, count):
    rows = query(database, "SELECT marker, count(*) FROM queue_celery_test_record"
                           " WHERE marker LIKE %s GROUP BY marker", (prefix + "-%",))
    assert len(rows) == count and {n for _marker, n in rows} == {1}


def test_jobs_held_by_a_sigkilled_worker_run_on_another_at_once(env, database):
    worker = Worker(database, "", "held", "--concurrency", "2")
    try:
        prefix, ids = enqueue_held_jobs(env, database)
    finally:
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
        worker.stop()
    heir = Worker(database, "", "heir", "--concurrency", "2")
    try:
        assert set(wait_for_jobs(database, ids, timeout=30).values()) == {"done"}
    finally:
        heir.stop()
    assert_each_ran_once(database, prefix, 11)
    assert count_rows(database, prefix + "-running") == 1


def test_jobs_held_by_a_worker_at_its_warm_shutdown_run_on_another(env, database):
    worker = Worker(database, "", "stopped", "--concurrency", "2")
    try:
        prefix, ids = enqueue_held_jobs(env, database)
    finally:
        worker.stop()  # SIGTERM: the running job ends, the eta jobs are given back
    assert messages(celeryapp.queue_name("default")) == {"waiting": 10, "reserved": 0}
    heir = Worker(database, "", "heir", "--concurrency", "2")
    try:
        assert set(wait_for_jobs(database, ids, timeout=30).values()) == {"done"}
    finally:
        heir.stop()
    assert_each_ran_once(database, prefix, 11)
