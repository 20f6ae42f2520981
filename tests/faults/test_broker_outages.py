"""Broker outages on a private Redis server: no job is lost, none runs twice."""
import time
import uuid

from harness import Worker, count_rows, query, wait_for_jobs


def marker():
    return uuid.uuid4().hex


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
