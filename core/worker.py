"""Starting a Celery worker for jobs: shared by ``odoo celery worker`` and the prefork server."""
import logging
import os
import sys

import psutil
from celery import signals
from celery.utils.nodenames import default_nodename, host_format
from celery.worker import state

import odoo
from odoo import SUPERUSER_ID, api
from odoo.tools import config

from .celeryapp import QUEUES, celery_app, queue_name

_logger = logging.getLogger(__name__)


def served_databases():
    """The databases named in odoo.conf (``-d``/``db_name``, comma separated)."""
    return [name for name in (config["db_name"] or "").split(",") if name]


def sweep(dbnames):
    """Run the sweeper of each database now (as a worker starts)."""
    for dbname in dbnames:
        try:
            with api.Environment.manage(), odoo.registry(dbname).cursor() as cr:
                api.Environment(cr, SUPERUSER_ID, {})["celery.job"]._cron_sweep()
        except Exception:
            _logger.warning("sweeper of database %s failed at worker start", dbname, exc_info=True)


def recycle_when_memory_exceeded(**_kwargs):
    """After a job: past limit_memory_soft, stop so the master starts a fresh worker."""
    rss = psutil.Process(os.getpid()).memory_info().rss
    if rss > config["limit_memory_soft"]:
        _logger.info("worker %d: memory %d > limit_memory_soft, recycling", os.getpid(), rss)
        state.should_stop = 0


def keep_odoo_logging(**_kwargs):
    """A receiver of Celery's setup_logging: having one tells Celery not to set up logging."""


def run_worker(queues, concurrency, pool, hostname, loglevel="INFO", recycle=False):
    """Run a Celery worker on the job ``queues`` in this process; return its exit code.

    ``recycle``: a solo worker under a master exits after a job past the memory limit.
    """
    unknown = set(queues) - set(QUEUES)
    if unknown:
        sys.exit("unknown queue(s) %s: use %s" % (", ".join(sorted(unknown)), ", ".join(QUEUES)))
    dbnames = served_databases()
    # Registries loaded before the pool forks are shared by its processes; connections are not.
    for dbname in dbnames:
        odoo.registry(dbname)
    odoo.sql_db.close_all()
    app = celery_app()
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
