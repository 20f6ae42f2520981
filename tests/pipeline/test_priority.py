"""Priority within a queue, on the brokers that support it."""
import uuid

import pytest

from harness import BROKERS, Worker, query, require_port, use_broker, wait_for_jobs


def marker():
    return uuid.uuid4().hex


@pytest.mark.parametrize("name", ["redis", "rabbitmq"])
def test_priority_orders_a_queue_where_the_broker_supports_it(name, env, database):
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
