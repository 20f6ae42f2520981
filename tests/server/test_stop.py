"""Stopping a running job: ``button_cancel`` on a started job, over XML-RPC through a server,
of a job run by an ``odoo celery worker`` process of its own (as on another machine)."""
import time
import uuid
import xmlrpc.client

import psutil
import pytest

from harness import Client, Server, Worker, count_rows, query, use_broker, wait_for_jobs
from odoo.addons.queue_celery.core.worker_process import STOP_CHECK_INTERVAL

# The promise: a stopped job has ended within this many seconds of the request.
STOP_DEADLINE = 5
JOB_MODEL = "queue.celery.test.record"
ACCESS_ERROR = 4  # the XML-RPC fault code of Odoo's AccessError


def marker():
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def queue_prefix():
    """Queues of this module's own: no other test's worker takes its jobs."""
    return "qc-stop-%s." % marker()


@pytest.fixture(scope="module")
def rpc_server(database, queue_prefix):
    """A server that runs no job itself: it answers RPC and publishes."""
    use_broker("")
    server = Server(database, "", kinds=(), celery_queue_prefix=queue_prefix,
                    celery_workers_high=0, celery_workers_default=0, celery_workers_low=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(database, queue_prefix):
    """An ``odoo celery worker`` with two processes (Celery's prefork pool), on the default
    queue."""
    process = Worker(database, "", "stop", "--concurrency", "2", "--queues", "default",
                     celery_queue_prefix=queue_prefix)
    yield process
    process.stop()


def job_row(database, job_id, columns):
    return query(database, "SELECT " + columns + " FROM celery_job WHERE id = %s", (job_id,))[0]


def running(database, job_id):
    """Wait until the job runs; the pid of its worker process."""
    assert wait_for_jobs(database, [job_id], states=("started",)) == {job_id: "started"}
    time.sleep(1)  # into its loop, or its statement
    return job_row(database, job_id, "worker_pid")[0]


def assert_stopped(database, job_id, mark, by, within=STOP_DEADLINE):
    """The job ended cancelled ``within`` seconds, its work rolled back, saying who."""
    assert wait_for_jobs(database, [job_id], timeout=within) == {job_id: "cancelled"}
    exc_info, history = job_row(database, job_id, "exc_info, retry_history")
    assert exc_info.endswith("Stopped by %s." % by)
    assert history.splitlines()[0].endswith("attempt 1 stopped: Stopped by %s." % by)
    assert count_rows(database, mark) == 0


@pytest.mark.parametrize("method, args", [("make_then_spin", []),
                                          ("make_then_sleep_in_sql", [60])],
                         ids=["busy-in-python", "in-pg_sleep"])
def test_a_manager_stops_a_running_job_and_its_worker_runs_the_next(
        rpc_server, worker, database, people, method, args):
    manager = Client(rpc_server, database, *people["manager"])
    plain = Client(rpc_server, database, *people["plain"])
    children = {child.pid for child in psutil.Process(worker.process.pid).children()}
    mark, bystander_mark, next_mark = marker(), marker(), marker()
    bystander = plain("celery.job", "enqueue", JOB_MODEL, "sleep_then_make",
                      args=[bystander_mark, 12])
    running(database, bystander)
    job_id = manager("celery.job", "enqueue", JOB_MODEL, method, args=[mark] + args)
    pid = running(database, job_id)
    assert manager("celery.job", "button_cancel", [job_id]) is True
    assert_stopped(database, job_id, mark, "manager")
    # Nobody else's job is touched; the stopped job's worker process runs the next one.
    assert wait_for_jobs(database, [bystander], states=("started",)) == {bystander: "started"}
    next_job = manager("celery.job", "enqueue", JOB_MODEL, "make", args=[next_mark])
    assert wait_for_jobs(database, [next_job]) == {next_job: "done"}
    assert job_row(database, next_job, "worker_pid")[0] == pid
    assert wait_for_jobs(database, [bystander]) == {bystander: "done"}
    assert count_rows(database, bystander_mark) == count_rows(database, next_mark) == 1
    assert {child.pid for child in psutil.Process(worker.process.pid).children()} == children


def test_only_a_manager_of_the_jobs_company_may_stop_it(rpc_server, worker, database, people):
    manager = Client(rpc_server, database, *people["manager"])
    plain = Client(rpc_server, database, *people["plain"])
    mark = marker()
    job_id = plain("celery.job", "enqueue", JOB_MODEL, "make_then_spin", args=[mark])
    running(database, job_id)
    for role in ("plain", "portal", "other_manager"):
        with pytest.raises(xmlrpc.client.Fault) as refused:
            Client(rpc_server, database, *people[role])("celery.job", "button_cancel", [job_id])
        assert refused.value.faultCode == ACCESS_ERROR, (role, refused.value)
    assert query(database, "SELECT count(*) FROM celery_job_stop WHERE job_id = %s",
                 (job_id,)) == [(0,)]
    time.sleep(1)
    assert job_row(database, job_id, "state")[0] == "started"
    manager("celery.job", "button_cancel", [job_id])
    assert_stopped(database, job_id, mark, "manager")


def test_a_stop_whose_notice_was_missed_is_found_by_the_workers_look_up(
        rpc_server, worker, database, people):
    manager = Client(rpc_server, database, *people["manager"])
    mark = marker()
    job_id = manager("celery.job", "enqueue", JOB_MODEL, "make_then_spin", args=[mark])
    running(database, job_id)
    # The request as button_cancel records it, without the NOTIFY that goes with it.
    query(database, "INSERT INTO celery_job_stop (job_id, task_id, user_id, date)"
                    " SELECT id, celery_task_id, %s, now() FROM celery_job WHERE id = %s",
          (people["manager"][0], job_id))
    assert_stopped(database, job_id, mark, "manager", within=STOP_CHECK_INTERVAL + STOP_DEADLINE)


def test_a_job_that_ended_before_the_stop_stays_done(rpc_server, worker, database, people):
    manager = Client(rpc_server, database, *people["manager"])
    mark = marker()
    job_id = manager("celery.job", "enqueue", JOB_MODEL, "make", args=[mark])
    assert wait_for_jobs(database, [job_id]) == {job_id: "done"}
    manager("celery.job", "button_cancel", [job_id])
    time.sleep(1)
    assert job_row(database, job_id, "state, retry_history") == ("done", None)
    assert count_rows(database, mark) == 1


def test_a_solo_worker_stops_a_job_and_runs_the_next(rpc_server, database, people, queue_prefix):
    """The pool of the prefork server's Celery workers: the job runs in the process that
    consumes the messages."""
    solo = Worker(database, "", "stop-solo", "--pool", "solo", "--queues", "low",
                  celery_queue_prefix=queue_prefix)
    try:
        manager = Client(rpc_server, database, *people["manager"])
        mark, next_mark = marker(), marker()
        job_id = manager("celery.job", "enqueue", JOB_MODEL, "make_then_spin", args=[mark],
                         queue="low")
        assert running(database, job_id) == solo.process.pid
        manager("celery.job", "button_cancel", [job_id])
        assert_stopped(database, job_id, mark, "manager")
        next_job = manager("celery.job", "enqueue", JOB_MODEL, "make", args=[next_mark],
                           queue="low")
        assert wait_for_jobs(database, [next_job]) == {next_job: "done"}
        assert job_row(database, next_job, "worker_pid")[0] == solo.process.pid
    finally:
        solo.stop()
