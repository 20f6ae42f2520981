"""Processes a run starts: ``odoo`` servers, ``odoo celery worker`` processes, and others.

Each runs in a session of its own and logs to .run/NAME-PID.log; ``stop_all`` stops what is
still running when a run ends early.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import xmlrpc.client

import psutil

from harness.odoo_version import ODOO_VERSION, ROOT
from harness.site import RUN, addons_path, free_port, run_name, write_conf

QUEUE_NAMES = ("high", "default", "low")
WORKER_KINDS = ("HighPriorityCeleryWorker", "DefaultCeleryWorker", "LowPriorityCeleryWorker")
_running = []


class Process:
    """A process in a session of its own, logging to .run/NAME-PID.log."""

    def __init__(self, name, argv, env=None):
        RUN.mkdir(exist_ok=True)
        self.log_path = RUN / ("%s-%d.log" % (name, os.getpid()))
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=str(ROOT),
                                        env=dict(os.environ, **(env or {})))
        _running.append(self)

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, timeout=60):
        deadline = time.time() + timeout
        while not condition():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError("%s: condition not met; log:\n%s"
                                     % (self.log_path.name, self.output()[-5000:]))
            time.sleep(0.1)

    def children_rss(self):
        """RSS (bytes) of each child process (a prefork pool's workers)."""
        return [child.memory_info().rss for child in psutil.Process(self.process.pid).children()]

    def stop(self, sig=signal.SIGTERM):
        """Signal the process (it stops its own children), then kill what is left."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        if self in _running:
            _running.remove(self)


def stop_all():
    """Stop every process of this run still running."""
    for process in list(_running):
        process.stop()


class OdooProcess(Process):
    """The ``odoo`` command of this interpreter's Odoo version, with ``args``."""

    def __init__(self, name, args):
        super().__init__(name, ODOO_VERSION.command + args)


class Worker(OdooProcess):
    """An ``odoo celery worker`` process, ready to consume."""

    def __init__(self, database, broker_url, name, *args, **options):
        conf = write_conf("worker-" + name, broker_url, **options)
        super().__init__("worker-" + name, [
            "--addons-path=" + addons_path(), "celery", "worker", "-c", str(conf), "-d", database,
            # The run's pid too: RabbitMQ refuses a second worker of the same name, any run's.
            "--hostname", "%s-%s-%d@%%h" % (run_name(), name, os.getpid())] + list(args))
        self.wait_for(lambda: " ready." in self.output())


class Server(OdooProcess):
    """``odoo --workers=2 --load=web,queue_celery`` on its own port, serving; with
    ``workers=0``, Odoo's threaded server, its Celery workers ready beside it."""

    def __init__(self, database, broker_url, kinds=WORKER_KINDS, workers=2, **options):
        self.port = free_port()
        conf = write_conf("server", broker_url, **options)
        super().__init__("server-%d" % self.port, [
            "-c", str(conf), "-d", database, "--db-filter=^%s$" % database,
            "--workers=%d" % workers, "--load=web,queue_celery", "--http-interface=127.0.0.1",
            "--http-port=%d" % self.port, "--max-cron-threads=0",
        ] + ODOO_VERSION.realtime_port_args(free_port()))
        if workers:
            self.wait_for(lambda: all("Worker %s (" % kind in self.output() for kind in kinds))
        else:
            self.wait_for(lambda: len(self.queue_workers()) == len(QUEUE_NAMES) and self.output()
                          .count(" ready.") >= sum(map(len, self.queue_workers().values())))
        self.wait_for(lambda: self.get("/web/login")[0] == 200)

    def get(self, path):
        try:
            # A server whose HTTP workers all died accepts and never answers: no waiting forever.
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=30) as answer:
                return answer.status, answer.read()
        except OSError:
            return None, b""

    def rpc(self, database, model, method, *args, **kwargs):
        """``model.method(*args, **kwargs)`` over JSON-RPC as admin; its result."""
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {
            "service": "object", "method": "execute_kw",
            "args": [database, ODOO_VERSION.admin_uid, "admin", model, method, list(args), kwargs],
        }}).encode()
        request = urllib.request.Request("http://127.0.0.1:%d/jsonrpc" % self.port, body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            reply = json.loads(answer.read())
        if "error" in reply:
            raise RuntimeError(reply["error"]["data"]["message"])
        return reply["result"]

    def queue_workers(self):
        """{queue: [pid]} of the Celery workers the server logged at its start, either mode."""
        return {queue: [int(pid) for pid in re.findall(r"\d+", pids)] for queue, pids in
                re.findall(r"Celery workers: queue (\w+): (?:\d+ process(?:es)? \(pids? ([\d, ]+)\)"
                           r"|no process)", self.output())}

    def celery_workers(self):
        """{kind: [pid]} of the live Celery worker processes, from their "alive" log lines."""
        workers = {}
        for kind, pid in re.findall(r"Worker (\w+CeleryWorker) \((\d+)\) alive", self.output()):
            try:
                alive = psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if alive:
                workers.setdefault(kind, []).append(int(pid))
        return workers


class Client:
    """A user of a Server over XML-RPC: ``client(model, method, *args, **kwargs)``."""

    def __init__(self, server, database, uid, password):
        self.proxy = xmlrpc.client.ServerProxy("http://127.0.0.1:%d/xmlrpc/2/object" % server.port)
        self.database, self.uid, self.password = database, uid, password

    def __call__(self, model, method, *args, **kwargs):
        return self.proxy.execute_kw(self.database, self.uid, self.password, model, method,
                                     list(args), kwargs)
