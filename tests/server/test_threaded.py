"""Odoo's threaded server (``odoo`` without ``--workers``) runs jobs too: it starts Celery
workers per queue beside it, restarts one that dies, and leaves none behind when it stops
or dies."""
import os
import signal
import time
import uuid

import psutil
import pytest

from harness import Server, count_rows, query, use_broker, wait_for_jobs


def marker():
    return uuid.uuid4().hex


def alive(pids):
    """Those of ``pids`` still running (zombies are not)."""
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def wait_until_gone(pids, timeout=30):
    """Wait for ``pids`` to end; answer those still running after ``timeout`` (killed then)."""
    deadline = time.time() + timeout
    while alive(pids) and time.time() < deadline:
        time.sleep(0.2)
    left = alive(pids)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


def test_sigterm_lets_the_running_job_finish_and_leaves_no_worker(database, env):
    use_broker("")
    threaded = Server(database, "", workers=0)
    pids = [pid for pids in threaded.queue_workers().values() for pid in pids]
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().sleep_then_make(mark, 2)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    threaded.stop(signal.SIGTERM)
    assert threaded.process.returncode == 0
    assert wait_for_jobs(database, [job.id], timeout=5) == {job.id: "done"}
    assert count_rows(database, mark) == 1
    assert alive(pids) == []


def test_a_sigkilled_server_leaves_no_worker_behind(database):
    use_broker("")
    threaded = Server(database, "", workers=0)
    pids = [pid for pids in threaded.queue_workers().values() for pid in pids]
    assert len(alive(pids)) == 3
    threaded.stop(signal.SIGKILL)
    assert wait_until_gone(pids) == []


@pytest.fixture(scope="module")
def threaded(database):
    """A threaded server on the embedded broker: two workers on the default queue, one each
    on the others."""
    use_broker("")
    process = Server(database, "", workers=0, celery_workers_default=2)
    yield process
    process.stop()


def test_threaded_server_logs_its_workers_and_runs_a_job_on_each_queue(threaded, database):
    workers = threaded.queue_workers()
    assert {queue: len(pids) for queue, pids in workers.items()} == {
        "high": 1, "default": 2, "low": 1}
    children = {child.pid for child in psutil.Process(threaded.process.pid).children()}
    assert {pid for pids in workers.values() for pid in pids} <= children
    marks = {queue: marker() for queue in ("high", "default", "low")}
    job_ids = [threaded.rpc(database, "celery.job", "enqueue", "queue.celery.test.record", "make",
                            args=[mark], queue=queue) for queue, mark in marks.items()]
    assert set(wait_for_jobs(database, job_ids).values()) == {"done"}
    rows = query(database, "SELECT queue, worker_hostname, worker_pid FROM celery_job"
                           " WHERE id IN %s", (tuple(job_ids),))
    for queue, hostname, pid in rows:
        assert hostname.startswith("%s-%d." % (queue, threaded.process.pid))
        assert pid in workers[queue]
    assert all(count_rows(database, mark) == 1 for mark in marks.values())


def test_a_worker_that_dies_is_replaced(threaded, database):
    pid = threaded.queue_workers()["high"][0]
    os.kill(pid, signal.SIGKILL)
    threaded.wait_for(lambda: "Celery worker (%d) of queue high exited" % pid in threaded.output())
    job_id = threaded.rpc(database, "celery.job", "enqueue", "queue.celery.test.record", "make",
                          args=[marker()], queue="high")
    assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
    (worker_pid,), = query(database, "SELECT worker_pid FROM celery_job WHERE id = %s", (job_id,))
    assert worker_pid != pid
    assert worker_pid in [child.pid for child in psutil.Process(threaded.process.pid).children()]


def test_prefork_server_logs_its_workers_per_queue(server):
    pids = server.queue_workers()
    assert {queue: len(workers) for queue, workers in pids.items()} == {
        "high": 1, "default": 2, "low": 1}
    forked = server.celery_workers()
    assert pids["default"][:2] == sorted(forked["DefaultCeleryWorker"])[:2] or \
        set(pids["default"]) == set(forked["DefaultCeleryWorker"])
