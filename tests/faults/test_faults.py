"""Faults for real: killed workers, a stopped broker, a restarted PostgreSQL and server.

The longest (marked ``faults``) run with ``make test-faults``; the others with ``make test``.
Every job writes one row, so "exactly once" is a count. The sweeper runs from the test
(it is the cron's method) with no grace, as a minute-by-minute cron would in production.
"""
import itertools
import os
import random
import signal
import subprocess
import time
import uuid

import psycopg2
import pytest

import odoo
from harness import (
    BROKERS,
    RedisServer,
    Server,
    environment,
    query,
    require_port,
    use_broker,
    wait_for_jobs,
)
from odoo.addons.queue_celery import chain, group

FINAL = ("done", "failed", "cancelled")


def enqueue_many(env, count, **options):
    prefix = uuid.uuid4().hex
    jobs = [env["queue.celery.test.record"].with_delay(**options).make("%s-%d" % (prefix, i))
            for i in range(count)]
    env.cr.commit()
    return prefix, [job.id for job in jobs]


def sweep_until_final(database, ids, timeout=240):
    """Run the sweeper every 2 s until every job ended; return {state: count}."""
    deadline = time.time() + timeout
    while True:
        try:
            with environment(database) as env:
                env["celery.job"]._cron_sweep()
        except psycopg2.InterfaceError:
            pass  # PostgreSQL restarted: Odoo's pool drops the dead connection
        except psycopg2.OperationalError as error:
            if error.pgcode:
                raise
        states = wait_for_jobs(database, ids, timeout=2)
        if all(state in FINAL for state in states.values()) or time.time() > deadline:
            counts = {}
            for state in states.values():
                counts[state] = counts.get(state, 0) + 1
            return counts


def assert_exactly_once(database, prefix, count):
    rows = query(database, "SELECT marker, count(*) FROM queue_celery_test_record"
                           " WHERE marker LIKE %s GROUP BY marker", (prefix + "-%",))
    assert len(rows) == count, "lost: %d" % (count - len(rows))
    assert max(n for _marker, n in rows) == 1, "duplicated"


def sigkill_workers_for(server, seconds):
    """SIGKILL one Celery worker of ``server`` every second for ``seconds``; the pids killed."""
    killed = []
    for _second in range(seconds):
        time.sleep(1)
        pids = [pid for pids in server.celery_workers().values() for pid in pids]
        if pids:
            killed.append(random.choice(pids))
            os.kill(killed[-1], signal.SIGKILL)
    return killed


def test_1000_jobs_while_workers_are_sigkilled_every_second(database, env, eager_sweeper):
    use_broker("")
    server = Server(database, "", celery_workers_default=2)
    try:
        prefix, ids = enqueue_many(env, 1000)
        killed = sigkill_workers_for(server, 15)
        assert sweep_until_final(database, ids) == {"done": 1000}
        assert len(killed) >= 10
        assert_exactly_once(database, prefix, 1000)
    finally:
        server.stop()


def test_200_chains_of_5_while_workers_are_sigkilled_every_second(database, env, eager_sweeper):
    use_broker("")
    server = Server(database, "", celery_workers_default=2)
    prefix = uuid.uuid4().hex
    Records = env["queue.celery.test.record"]
    try:
        chains = [[Records.delayable().make("%s-%d-%d" % (prefix, number, step))
                   for step in range(5)] for number in range(200)]
        jobs = group(*[chain(*steps) for steps in chains]).delay()
        env.cr.commit()
        killed = sigkill_workers_for(server, 15)
        assert sweep_until_final(database, jobs.ids) == {"done": 1000}
        assert len(killed) >= 10
        assert_exactly_once(database, prefix, 1000)
        runs = dict((job_id, (started, done)) for job_id, started, done in query(
            database, "SELECT id, date_started, date_done FROM celery_job WHERE id IN %s",
            (tuple(jobs.ids),)))
        for number, steps in enumerate(chains):
            ran = [runs[step.job.id] for step in steps]
            assert all(before[1] < after[0] for before, after in itertools.pairwise(ran)), \
                "chain %d ran out of order" % number
    finally:
        server.stop()


def stop_rabbitmq():
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)


def start_rabbitmq():
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)


@pytest.mark.faults
@pytest.mark.parametrize("name", ["redis", "rabbitmq"])
def test_broker_stopped_for_10_seconds_mid_run(name, database, env, eager_sweeper):
    if name == "redis":
        redis = RedisServer()
        url, stop_broker, start_broker = redis.url, redis.stop, redis.start
    else:
        url, port = BROKERS["rabbitmq"]
        require_port("rabbitmq", port)
        stop_broker, start_broker = stop_rabbitmq, start_rabbitmq
    use_broker(url)
    server = Server(database, url, celery_workers_default=2)
    try:
        prefix, ids = enqueue_many(env, 300)
        time.sleep(1)
        stop_broker()
        try:
            more_prefix, more_ids = enqueue_many(env, 50)  # published nowhere: pending
            time.sleep(10)
        finally:
            start_broker()
        assert sweep_until_final(database, ids + more_ids) == {"done": 350}
        assert_exactly_once(database, prefix, 300)
        assert_exactly_once(database, more_prefix, 50)
    finally:
        server.stop()
        use_broker("")
        if name == "redis":
            redis.stop()


@pytest.mark.faults
def test_postgresql_restarted_mid_run(database, eager_sweeper):
    url, port = BROKERS["redis"]
    require_port("redis", port)
    use_broker(url)
    server = Server(database, url, celery_workers_default=2)
    try:
        with environment(database) as env:
            prefix, ids = enqueue_many(env, 300)
        time.sleep(1)
        for version in os.listdir("/etc/postgresql"):
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main",
                            "restart"], check=True)
        odoo.sql_db.close_all()
        assert sweep_until_final(database, ids) == {"done": 300}
        assert_exactly_once(database, prefix, 300)
    finally:
        server.stop()
        use_broker("")


def test_server_stopped_with_sigterm_mid_run_and_started_again(database, env, eager_sweeper):
    use_broker("")
    server = Server(database, "")
    prefix, ids = enqueue_many(env, 300)
    time.sleep(1)
    server.stop(signal.SIGTERM)
    states = wait_for_jobs(database, ids, timeout=1)
    assert "started" not in states.values()  # a stopping worker finishes its job
    server = Server(database, "")
    try:
        assert sweep_until_final(database, ids) == {"done": 300}
        assert_exactly_once(database, prefix, 300)
    finally:
        server.stop()


def test_runaway_jobs_fail_with_a_reason_and_the_worker_recovers(database, env):
    use_broker("")
    server = Server(database, "", limit_memory_hard=str(1024 * 2 ** 20))
    try:
        Record = env["queue.celery.test.record"]
        slow = Record.with_delay(time_limit=2).sleep_then_make(uuid.uuid4().hex, 60)
        spinning = Record.with_delay(time_limit=2).spin_forever()
        greedy = Record.with_delay().eat_memory(4096)
        env.cr.commit()
        ids = [slow.id, spinning.id, greedy.id]
        assert wait_for_jobs(database, ids, timeout=60) == dict.fromkeys(ids, "failed")
        reasons = dict(query(database, "SELECT id, exc_info FROM celery_job WHERE id IN %s",
                             (tuple(ids),)))
        assert "ran past its time limit of 2 s" in reasons[slow.id]
        assert "ran past its time limit of 2 s" in reasons[spinning.id]
        assert "ran out of memory" in reasons[greedy.id]
        after = Record.with_delay().make(uuid.uuid4().hex)
        env.cr.commit()
        assert wait_for_jobs(database, [after.id]) == {after.id: "done"}
    finally:
        server.stop()
