"""Celery workers forked and watched by Odoo's prefork server (``odoo --workers=N``).

Loaded with the addon as a server-wide module (``--load=...,queue_celery``): the master also
forks ``celery_workers_high``, ``celery_workers_default`` and ``celery_workers_low``
Celery worker processes (1, 2 and 1 by default), restarts any that dies and stops them
with the server. Each runs one job at a time (Celery's solo pool), like Odoo's own
workers, and is recycled past ``limit_memory_soft``.
"""
import logging
import os
import resource
import signal
import sys
import threading

from celery.worker import state

from odoo.service import server
from odoo.tools import config

from .settings import option
from .worker import log_queue_workers, run_worker

_logger = logging.getLogger(__name__)

# Without a ping for this long, the master kills the worker (a job stuck outside Python).
WATCHDOG_TIMEOUT = 60


class CeleryWorker(server.Worker):
    """A Celery worker process of the prefork server, on one job queue."""

    queue = None

    def __init__(self, multi):
        super().__init__(multi)
        self.watchdog_timeout = WATCHDOG_TIMEOUT

    def run(self):
        self.pid = os.getpid()
        self.setproctitle(self.queue)
        _logger.info("Worker %s (%s) alive", type(self).__name__, self.pid)
        if self.multi.socket:
            self.multi.socket.close()  # jobs, not HTTP requests
        # The master's signal handlers are not ours: Celery installs its own.
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP,
                       signal.SIGQUIT, signal.SIGUSR1, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(signum, signal.SIG_DFL)
        # A job past limit_memory_hard gets a MemoryError instead of taking the machine.
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (int(config["limit_memory_hard"]), hard))
        threading.Thread(target=self.watch_master, daemon=True).start()
        sys.exit(run_worker([self.queue], 1, "solo", "%s-%d@%%h" % (self.queue, self.pid),
                            recycle=True))

    def watch_master(self):
        """Ping the master's watchdog; stop after the current job when the master is gone."""
        while True:
            if self.ppid != os.getppid():
                _logger.info("Worker (%s) parent changed, stopping", self.pid)
                state.should_stop = 0
                return
            self.multi.pipe_ping(self.watchdog_pipe)
            threading.Event().wait(self.multi.beat)


class HighPriorityCeleryWorker(CeleryWorker):
    queue = "high"


class DefaultCeleryWorker(CeleryWorker):
    queue = "default"


class LowPriorityCeleryWorker(CeleryWorker):
    queue = "low"


WORKER_CLASSES = (HighPriorityCeleryWorker, DefaultCeleryWorker, LowPriorityCeleryWorker)


def process_spawn(self):
    """PreforkServer.process_spawn, plus the Celery workers each queue is short of."""
    process_spawn.odoo(self)
    celery_workers = self.__dict__.setdefault("celery_workers", {})
    for klass in WORKER_CLASSES:
        workers = celery_workers.setdefault(klass, {})
        while len(workers) < option("workers_" + klass.queue):
            self.worker_spawn(klass, workers)
    if not self.__dict__.get("celery_workers_logged"):
        self.celery_workers_logged = True
        log_queue_workers({klass.queue: list(workers) for klass, workers in celery_workers.items()})


def worker_pop(self, pid):
    """PreforkServer.worker_pop, forgetting Celery workers too."""
    for workers in self.__dict__.get("celery_workers", {}).values():
        workers.pop(pid, None)
    worker_pop.odoo(self, pid)


def install():
    """Teach Odoo's prefork server to fork Celery workers (once per process)."""
    prefork = server.PreforkServer
    if prefork.process_spawn is process_spawn:
        return
    process_spawn.odoo, prefork.process_spawn = prefork.process_spawn, process_spawn
    worker_pop.odoo, prefork.worker_pop = prefork.worker_pop, worker_pop
