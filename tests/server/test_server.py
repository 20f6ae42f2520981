"""The prefork server forks Celery workers; a second machine's worker; crash recovery."""
import json
import os
import signal
import time
import urllib.request
import uuid

import psutil
import pytest

import odoo
from harness import (
    ADMIN_UID,
    BROKERS,
    WORKER_KINDS,
    Server,
    Worker,
    count_rows,
    environment,
    query,
    require_port,
    use_broker,
    wait_for_jobs,
)


def marker():
    return uuid.uuid4().hex


def test_server_forks_the_three_worker_kinds_and_they_run_their_queues(server, database):
    assert server.rpc(database, "res.users", "search_count", [("login", "=", "admin")]) == 1
    assert len(server.celery_workers()["DefaultCeleryWorker"]) == 2
    marks = {queue: marker() for queue in ("high", "default", "low")}
    job_ids = [server.rpc(database, "celery.job", "enqueue", "queue.celery.test.record", "make",
                          args=[mark], queue=queue) for queue, mark in marks.items()]
    assert set(wait_for_jobs(database, job_ids).values()) == {"done"}
    hostnames = [host for host, in query(
        database, "SELECT worker_hostname FROM celery_job WHERE id IN %s ORDER BY id",
        (tuple(job_ids),))]
    assert [hostname.split("-")[0] for hostname in hostnames] == ["high", "default", "low"]
    assert all(count_rows(database, mark) == 1 for mark in marks.values())


def test_admin_logs_in_over_http(server, database):
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {
        "db": database, "login": "admin", "password": "admin"}}).encode()
    request = urllib.request.Request("http://127.0.0.1:%d/web/session/authenticate" % server.port,
                                     body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read())["result"]["uid"] == ADMIN_UID


def test_sigkilled_worker_is_restarted_and_its_job_runs_exactly_once(server, database, env):
    env["ir.config_parameter"].set_param("queue_celery.sweep_grace_seconds", "0")
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().sleep_then_make(mark, 3)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    (pid,), = query(database, "SELECT worker_pid FROM celery_job WHERE id = %s", (job.id,))
    os.kill(pid, signal.SIGKILL)
    # The master starts a new worker in place of the dead one.
    server.wait_for(lambda: len(server.celery_workers().get("DefaultCeleryWorker", [])) == 2
                    and pid not in server.celery_workers()["DefaultCeleryWorker"])
    env["celery.job"]._cron_sweep()  # unless the new worker's start-up sweep did it first
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "done"}
    (retry_count,), = query(database, "SELECT retry_count FROM celery_job WHERE id = %s", (job.id,))
    assert retry_count == 1
    assert count_rows(database, mark) == 1


def test_job_of_a_worker_that_keeps_dying_ends_failed(server, database, env):
    env["ir.config_parameter"].set_param("queue_celery.sweep_grace_seconds", "0")
    mark = marker()
    job = env["queue.celery.test.record"].with_delay(max_retries=0).sleep_then_make(mark, 3)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    (pid,), = query(database, "SELECT worker_pid FROM celery_job WHERE id = %s", (job.id,))
    os.kill(pid, signal.SIGKILL)
    server.wait_for(lambda: pid not in server.celery_workers().get("DefaultCeleryWorker", []))
    env["celery.job"]._cron_sweep()
    env.cr.commit()
    assert wait_for_jobs(database, [job.id]) == {job.id: "failed"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (job.id,))
    assert "worker running this job died" in exc_info
    assert count_rows(database, mark) == 0


def test_job_past_its_time_limit_fails_and_the_worker_goes_on(server, database, env):
    slow, quick = marker(), marker()
    jobs = [env["queue.celery.test.record"].with_delay(time_limit=1).sleep_then_make(slow, 30),
            env["queue.celery.test.record"].with_delay().make(quick)]
    env.cr.commit()
    ids = [job.id for job in jobs]
    assert wait_for_jobs(database, ids) == {ids[0]: "failed", ids[1]: "done"}
    (exc_info,), = query(database, "SELECT exc_info FROM celery_job WHERE id = %s", (ids[0],))
    assert "ran past its time limit of 1 s" in exc_info
    assert count_rows(database, slow) == 0


def test_cli_worker_on_another_process_runs_the_servers_jobs(database):
    use_broker("")
    # Queues of their own: the module's server must not take these jobs.
    prefix = "qc-cli-%s." % marker()
    server = Server(database, "", kinds=WORKER_KINDS[:2], celery_workers_low=0,
                    celery_queue_prefix=prefix)
    cli = Worker(database, "", "cli-low", "--queues", "low", "--concurrency", "1",
                 celery_queue_prefix=prefix)
    try:
        job_id = server.rpc(database, "celery.job", "enqueue", "queue.celery.test.record", "make",
                            args=[marker()], queue="low")
        assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
        (hostname,), = query(database, "SELECT worker_hostname FROM celery_job WHERE id = %s",
                             (job_id,))
        assert hostname.startswith("pytest-cli-low-")
    finally:
        cli.stop()
        server.stop()


def test_sigterm_stops_every_process_and_a_running_job_finishes(database, env):
    use_broker("")
    server = Server(database, "")
    children = [psutil.Process(pid) for pids in server.celery_workers().values() for pid in pids]
    children += psutil.Process(server.process.pid).children(recursive=True)
    mark = marker()
    job = env["queue.celery.test.record"].with_delay().sleep_then_make(mark, 2)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    server.stop(signal.SIGTERM)
    assert wait_for_jobs(database, [job.id], timeout=5) == {job.id: "done"}
    assert count_rows(database, mark) == 1
    time.sleep(1)
    assert [child.pid for child in children if child.is_running()
            and child.status() != psutil.STATUS_ZOMBIE] == []


@pytest.mark.parametrize("name", list(BROKERS))
def test_two_databases_served_by_one_worker(name, database, second_database):
    url, port = BROKERS[name]
    if port:
        require_port(name, port)
    use_broker(url)
    worker = Worker("%s,%s" % (database, second_database), url, "two-dbs-" + name)
    try:
        ids, mark = {}, marker()
        for dbname in (database, second_database):
            with environment(dbname) as env:
                ids[dbname] = env["queue.celery.test.record"].with_delay().make(mark).id
        for dbname, job_id in ids.items():
            assert wait_for_jobs(dbname, [job_id]) == {job_id: "done"}
            assert count_rows(dbname, mark) == 1
    finally:
        worker.stop()
        use_broker("")


def test_worker_past_limit_memory_soft_is_recycled_between_jobs(database, env):
    use_broker("")
    prefix = "qc-memory-%s." % marker()
    # Above what an HTTP worker takes (Odoo 18's stops before serving past it), below what
    # each job leaves its Celery worker holding.
    server = Server(database, "", limit_memory_soft=str(768 * 2 ** 20), celery_queue_prefix=prefix)
    odoo.tools.config["celery_queue_prefix"] = prefix  # publish to this server's queues
    try:
        jobs = [env["queue.celery.test.record"].with_delay().make_and_keep_memory(marker(), 800)
                for _ in range(2)]
        env.cr.commit()
        ids = [job.id for job in jobs]
        assert wait_for_jobs(database, ids) == dict.fromkeys(ids, "done")
        pids = {pid for pid, in query(database, "SELECT worker_pid FROM celery_job WHERE id IN %s",
                                      (tuple(ids),))}
        # Each job left its worker past the limit: the master replaced it.
        server.wait_for(lambda: server.celery_workers().get("DefaultCeleryWorker")
                        and not pids & set(server.celery_workers()["DefaultCeleryWorker"]))
        assert "> limit_memory_soft, recycling" in server.output()
    finally:
        use_broker("")
        server.stop()
