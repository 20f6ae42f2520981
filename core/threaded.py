"""Celery workers beside Odoo's threaded server (``odoo`` without ``--workers``).

Loaded with the addon as a server-wide module (``--load=...,queue_celery``). Forking a
worker from a process that already runs threads is unsafe, so the server starts each one
as a process of its own: ``odoo celery worker`` on the server's own command line (odoo.conf,
databases, addons path, database options), ``celery_workers_high``, ``celery_workers_default``
and ``celery_workers_low`` of them, each running one job at a time (Celery's solo pool) as
the prefork server's do. They start once the server serves (not in ``--stop-after-init``
runs nor ``odoo shell``), a thread restarts any that dies, and the server's stop asks them
to finish their job first (SIGTERM, Celery's warm shutdown); a worker whose server died
stops by itself after its job (``--stop-with-parent``).
"""
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from odoo.service import server
from odoo.tools import config
from odoo.tools.misc import stripped_sys_argv

from .celeryapp import QUEUES
from .settings import option
from .worker import log_queue_workers

_logger = logging.getLogger(__name__)

# Seconds between two looks at the workers, to restart those that died.
SUPERVISION_INTERVAL = 1.0


def worker_command(queue, slot):
    """The command line of the worker ``slot`` of ``queue``: ``odoo celery worker`` with
    the options the server got (less ``-i``/``-u``/``--save``, which are the server's to do)."""
    server_args = stripped_sys_argv()[1:]
    if server_args and server_args[0].startswith("--addons-path="):
        server_args = server_args[1:]
    if server_args and server_args[0] == "server":
        server_args = server_args[1:]
    # The addons path first: Odoo finds the ``celery`` command in the addons it names.
    return [sys.executable, sys.argv[0], "--addons-path=" + config["addons_path"], "celery",
            "worker", "--queues", queue, "--concurrency", "1", "--pool", "solo",
            "--hostname", "%s-%d.%d@%%h" % (queue, os.getpid(), slot), "--stop-with-parent",
            ] + server_args


class CeleryWorkers:
    """The Celery worker processes of this threaded server: {queue: [process of each slot]}."""

    def __init__(self):
        self.processes = {queue: [] for queue in QUEUES}
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def spawn(self, queue, slot):
        # A session of its own: a Ctrl-C in the terminal reaches the server, which stops it.
        return subprocess.Popen(worker_command(queue, slot), start_new_session=True)

    def start(self):
        with self.lock:
            for queue, processes in self.processes.items():
                processes.extend(self.spawn(queue, slot)
                                 for slot in range(option("workers_" + queue)))
        log_queue_workers({queue: [process.pid for process in processes]
                           for queue, processes in self.processes.items()})
        threading.Thread(target=self.supervise, name="odoo.service.celery", daemon=True).start()

    def supervise(self):
        """Restart the workers that died, until the server stops."""
        while not self.stopping.wait(SUPERVISION_INTERVAL):
            with self.lock:
                if self.stopping.is_set():
                    return
                for queue, processes in self.processes.items():
                    for slot, process in enumerate(processes):
                        if process.poll() is not None:
                            processes[slot] = self.spawn(queue, slot)
                            _logger.warning("Celery worker (%d) of queue %s exited with code %s,"
                                            " replaced by pid %d", process.pid, queue,
                                            process.returncode, processes[slot].pid)

    def stop(self):
        """Stop every worker after its running job; past ``limit_time_real`` seconds, kill it
        (the sweeper runs its job again)."""
        with self.lock:
            self.stopping.set()
            processes = [process for processes in self.processes.values()
                         for process in processes]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        _logger.info("Celery workers: stopping %d process(es) after their running job",
                     len(processes))
        deadline = time.monotonic() + config["limit_time_real"]
        for process in processes:
            try:
                process.wait(max(0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _logger.warning("Celery worker (%d) still running, killed", process.pid)
                process.kill()
                process.wait()


def cron_spawn(self):
    """ThreadedServer.cron_spawn, and the Celery workers: from here on the server serves
    (its registries are loaded, its ``-i``/``-u`` done)."""
    cron_spawn.odoo(self)
    self.celery_workers = CeleryWorkers()
    self.celery_workers.start()


def stop(self):
    """ThreadedServer.stop, after stopping the Celery workers."""
    workers = self.__dict__.get("celery_workers")
    if workers is not None:
        workers.stop()
    stop.odoo(self)


def install():
    """Teach Odoo's threaded server to run Celery workers (once per process)."""
    threaded = server.ThreadedServer
    if threaded.cron_spawn is cron_spawn:
        return
    cron_spawn.odoo, threaded.cron_spawn = threaded.cron_spawn, cron_spawn
    stop.odoo, threaded.stop = threaded.stop, stop
