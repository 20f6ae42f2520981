"""Odoo's threaded server (``odoo`` without ``--workers``) runs jobs too: it starts Celery
workers per queue beside it, restarts one that dies, and leaves none behind when it stops
or dies."""
import os
import signal
import subprocess
import time
import uuid

import psutil
import pytest

from harness import (
    ODOO_VERSION,
    ROOT,
    WORKER_KINDS,
    addons_path,
    count_rows,
    free_port,
    query,
    wait_for_jobs,
    write_conf,
)


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
    """Wait for ``pids`` to end; answer those still running after ``timeout``."""
    deadline = time.time() + timeout
    while alive(pids) and time.time() < deadline:
        time.sleep(0.2)
    return alive(pids)


def test_sigterm_lets_the_running_job_finish_and_leaves_no_worker(lone_threaded, database, env):
    threaded, pids = lone_threaded
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().sleep_then_make(mark, 2)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    threaded.stop(signal.SIGTERM)
    assert threaded.process.returncode == 0
    assert wait_for_jobs(database, [job.id], timeout=5) == {job.id: "done"}
    assert count_rows(database, mark) == 1
    assert alive(pids) == []


def test_a_sigkilled_server_leaves_no_worker_behind(lone_threaded):
    threaded, pids = lone_threaded
    assert len(alive(pids)) == 4  # the default layout: high 1, default 2, low 1
    threaded.stop(signal.SIGKILL)
    assert wait_until_gone(pids) == []


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
    for queue, kind in zip(("high", "default", "low"), WORKER_KINDS, strict=True):
        for pid in pids[queue]:
            assert "Worker %s (%d) alive" % (kind, pid) in server.output()


@pytest.mark.parametrize("command", ["--stop-after-init", "shell"])
def test_no_worker_starts_in_a_run_that_does_not_serve(database, command):
    options = ["-c", str(write_conf("no-serve")), "-d", database, "--workers=0",
               "--load=web,queue_celery", "--http-port=%d" % free_port()]
    argv = (["--addons-path=" + addons_path(), "shell"] + options if command == "shell"
            else options + [command])
    run = subprocess.run(ODOO_VERSION.command + argv, input="print('shell ran')\n",
                         capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert command != "shell" or "shell ran" in output
    assert "Celery workers:" not in output
