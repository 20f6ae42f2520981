"""Starting a Celery worker for jobs: shared by ``odoo celery worker`` and the prefork server."""
import logging
import os
import sys
import threading
import time

import psutil
import psycopg2
from celery import signals
from celery.exceptions import Reject
from celery.utils.nodenames import default_nodename, host_format
from celery.worker import state

from odoo.tools import config

from .. import odoo_version
from . import runner, worker_process
from .celeryapp import QUEUES, TASK_NAME, celery_app, queue_name

_logger = logging.getLogger(__name__)


def served_databases():
    """The databases named in odoo.conf (``-d``/``db_name``, comma separated)."""
    return [name for name in (config["db_name"] or "").split(",") if name]


def sweep(dbnames):
    """Run the sweeper of each database now (as a worker starts)."""
    for dbname in dbnames:
        try:
            odoo_version.run_sweeper(dbname)
        except Exception:
            _logger.warning("sweeper of database %s failed at worker start", dbname, exc_info=True)


def recycle_when_memory_exceeded(**_kwargs):
    """After a job: past limit_memory_soft, stop so the master starts a fresh worker."""
    rss = psutil.Process(os.getpid()).memory_info().rss
    if rss > config["limit_memory_soft"]:
        _logger.info("worker %d: memory %d > limit_memory_soft, recycling", os.getpid(), rss)
        state.should_stop = 0


def log_queue_workers(pids):
    """Log which worker processes serve each queue: ``pids`` is {queue: [pid]}."""
    for queue in QUEUES:
        served = pids.get(queue, ())
        if served:
            _logger.info("Celery workers: queue %s: %s (%s %s)", queue,
                         "1 process" if len(served) == 1 else "%d processes" % len(served),
                         "pid" if len(served) == 1 else "pids", ", ".join(map(str, served)))
        else:
            _logger.info("Celery workers: queue %s: no process here (an `odoo celery worker`"
                         " elsewhere must serve it)", queue)


def stop_when_orphaned(parent_pid):
    """Stop after the running job once the process that started this one is gone."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    _logger.info("worker %d: its parent %d is gone, stopping", os.getpid(), parent_pid)
    state.should_stop = 0


def keep_odoo_logging(**_kwargs):
    """A receiver of Celery's setup_logging: having one tells Celery not to set up logging."""


def run_job_task(task, dbname, job_uuid):
    """The Celery task: run the job ``job_uuid`` of database ``dbname`` (runner.run_job)."""
    try:
        runner.run_job(dbname, job_uuid, task.request.id, task.request.hostname)
    except psycopg2.OperationalError as error:
        _logger.warning("job %s: PostgreSQL unreachable (%s), message requeued",
                        job_uuid, str(error).strip())
        time.sleep(1)  # do not spin while the database restarts
        raise Reject(str(error), requeue=True) from error


def run_worker(queues, concurrency, pool, hostname, loglevel="INFO", recycle=False,
               stop_with_parent=False):
    """Run a Celery worker on the job ``queues`` in this process; return its exit code.

    ``recycle``: a solo worker under a master exits after a job past the memory limit.
    ``stop_with_parent``: the worker stops after its job when the process that started it
    ends (a threaded server's worker must not outlive it).
    """
    unknown = set(queues) - set(QUEUES)
    if unknown:
        sys.exit("unknown queue(s) %s: use %s" % (", ".join(sorted(unknown)), ", ".join(QUEUES)))
    if stop_with_parent:
        threading.Thread(target=stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    dbnames = served_databases()
    # Registries loaded before the pool forks are shared by its processes; connections are not.
    for dbname in dbnames:
        odoo_version.registry(dbname)
    odoo_version.close_all_connections()
    app = celery_app()
    app.task(name=TASK_NAME, bind=True)(run_job_task)
    # Each process that runs jobs keeps its own state: a pool's children, or a solo worker.
    for started in (signals.worker_process_init, signals.worker_init):
        started.connect(worker_process.open_process, weak=False)
    for stopped in (signals.worker_process_shutdown, signals.worker_shutdown):
        stopped.connect(worker_process.close_process, weak=False)
    # Odoo has configured logging (odoo.conf's log options): Celery keeps its hands off.
    signals.setup_logging.connect(keep_odoo_logging, weak=False)
    if recycle:
        signals.task_postrun.connect(recycle_when_memory_exceeded, weak=False)
    signals.worker_ready.connect(lambda **_kwargs: sweep(dbnames), weak=False)
    worker = app.Worker(
        queues=[queue_name(queue) for queue in queues], concurrency=concurrency, pool=pool,
        hostname=host_format(default_nodename(hostname)), loglevel=loglevel,
        # A prefork child past limit_memory_soft is replaced after its job (in KiB).
        max_memory_per_child=config["limit_memory_soft"] // 1024)
    worker.start()
    return worker.exitcode
