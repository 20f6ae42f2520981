"""Broker outages on a private Redis server: no job is lost, none runs twice."""
import shutil
import subprocess
import time
import uuid

import pytest
from conftest import Worker, count_rows, free_port, query, use_broker, wait_for_jobs


def marker():
    return uuid.uuid4().hex


class RedisServer:
    """A Redis server of this test alone, which keeps nothing on disk (lost on restart)."""

    def __init__(self):
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while subprocess.call(["redis-cli", "-p", str(self.port), "ping"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            assert time.time() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def redis_server():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    use_broker(server.url)
    yield server
    use_broker("")
    server.stop()


@pytest.fixture
def sweep_now(sweeper_settings):
    """The sweeper acts at once on pending jobs and republishes every enqueued one."""
    sweeper_settings(0, 0)


def test_broker_down_at_enqueue_loses_nothing(env, database, redis_server, sweep_now):
    worker = Worker(database, redis_server.url, "outage-enqueue")
    try:
        redis_server.stop()
        mark = marker()
        started = time.time()
        job = env["queue.celery.test.record"].with_delay().make(mark)
        env.cr.commit()  # the broker is down: the job stays pending, the caller goes on
        assert time.time() - started < 15
        assert query(database, "SELECT state FROM celery_job WHERE id = %s", (job.id,)) == [
            ("pending",)]
        redis_server.start()
        env["celery.job"]._cron_sweep()
        env.cr.commit()
        assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
        assert count_rows(database, mark) == 1
    finally:
        worker.stop()


def test_broker_restart_losing_its_messages_loses_no_job(env, database, redis_server, sweep_now):
    marks = [marker() for _ in range(20)]
    jobs = [env["queue.celery.test.record"].with_delay().make(mark) for mark in marks]
    env.cr.commit()
    ids = [job.id for job in jobs]
    assert set(wait_for_jobs(database, ids, states=("enqueued",)).values()) == {"enqueued"}
    redis_server.stop()
    redis_server.start()  # every message is gone
    worker = Worker(database, redis_server.url, "outage-restart")
    try:
        env["celery.job"]._cron_sweep()
        env.cr.commit()
        assert set(wait_for_jobs(database, ids).values()) == {"done"}
        # A second sweep republishes nothing that is done, and nothing runs twice.
        env["celery.job"]._cron_sweep()
        env.cr.commit()
        time.sleep(1)
        assert [count_rows(database, mark) for mark in marks] == [1] * len(marks)
    finally:
        worker.stop()


@pytest.mark.parametrize("name", ["redis", "rabbitmq"])
def test_priority_orders_a_queue_where_the_broker_supports_it(name, env, database):
    from conftest import BROKERS, require_port

    url, port = BROKERS[name]
    require_port(name, port)
    use_broker(url)
    try:
        mark = marker()
        jobs = [env["queue.celery.test.record"].with_delay(priority=9).make(mark)
                for _ in range(6)]
        urgent = env["queue.celery.test.record"].with_delay(priority=0).make(mark)
        env.cr.commit()
        ids = [job.id for job in jobs] + [urgent.id]
        wait_for_jobs(database, ids, states=("enqueued",))
        worker = Worker(database, url, "priority-" + name, "--pool", "solo")
        try:
            assert set(wait_for_jobs(database, ids).values()) == {"done"}
        finally:
            worker.stop()
        order = [job_id for job_id, in query(
            database, "SELECT id FROM celery_job WHERE id IN %s ORDER BY date_started",
            (tuple(ids),))]
        assert order[0] == urgent.id
    finally:
        use_broker("")
