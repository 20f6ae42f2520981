"""Real parts for the process tests: a database, Odoo in this process, brokers, workers.

Odoo is imported here with the same compatibility layer as the launcher; workers are
real ``odoo celery worker`` processes on real brokers.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / ".run"
sys.path.insert(0, str(ROOT / "runtime"))
import py311compat  # noqa: E402

py311compat.apply_early()
import odoo  # noqa: E402

py311compat.apply_late()
from odoo import SUPERUSER_ID, api  # noqa: E402

ODOO = [sys.executable, str(ROOT / "runtime" / "odoo")]
ADDONS_PATH = "%s,%s" % (ROOT / "addons", ROOT / "tests" / "addons")
QUEUE_PREFIX = "qc-pytest-%d." % os.getpid()
BROKERS = {
    "embedded": ("", None),
    "redis": ("redis://127.0.0.1:6379/7", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}
FINAL_STATES = ("done", "failed", "cancelled")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_conf(name, broker_url="", **options):
    """An odoo.conf under .run/ for this test run, with ``options`` as they are named."""
    RUN.mkdir(exist_ok=True)
    path = RUN / ("%s-%d.conf" % (name, os.getpid()))
    subprocess.run([str(ROOT / "scripts" / "write-odoo-conf"), str(path), broker_url, ADDONS_PATH],
                   check=True)
    with open(path, "a") as conf:
        for key, value in dict({"celery_queue_prefix": QUEUE_PREFIX}, **options).items():
            conf.write("%s = %s\n" % (key, value))
    return path


def use_broker(broker_url):
    """Publish from this process to ``broker_url`` ('' is the embedded broker)."""
    odoo.tools.config["celery_broker_url"] = broker_url
    odoo.tools.config["celery_queue_prefix"] = QUEUE_PREFIX


def require_port(name, port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        message = "%s is not running on 127.0.0.1:%d" % (name, port)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must test every broker)")
        pytest.skip(message)


# Odoo in this process: the test run's configuration, addons importable for the tests.
odoo.tools.config.parse_config(["-c", str(write_conf("pytest")), "--log-level=warn"])
odoo.modules.module.initialize_sys_path()


@pytest.fixture(scope="session")
def database():
    """A new database with queue_celery and the test jobs addon, dropped at the end."""
    name = "qc_pytest_%d" % os.getpid()
    conf = write_conf("install")
    subprocess.run(ODOO + ["-c", str(conf), "-d", name, "-i", "queue_celery_test_jobs",
                           "--without-demo=all", "--stop-after-init", "--log-level=warn",
                           "--http-port=%d" % free_port()], check=True)
    # A copy for the tests of a worker serving two databases, made while nothing is connected.
    subprocess.run(["createdb", "-T", name, name + "_b"], check=True)
    yield name
    for dbname in (name, name + "_b"):
        odoo.sql_db.close_db(dbname)
        subprocess.call(["dropdb", "--if-exists", dbname])


@pytest.fixture(scope="session")
def second_database(database):
    """A second database like ``database``."""
    return database + "_b"


class OdooProcess:
    """A process of runtime/odoo in a session of its own, logging to .run/NAME-PID.log."""

    def __init__(self, name, args):
        self.log_path = RUN / ("%s-%d.log" % (name, os.getpid()))
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(ODOO + args, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def output(self):
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition, timeout=60):
        deadline = time.time() + timeout
        while not condition():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError("%s: condition not met; log:\n%s"
                                     % (self.log_path.name, self.output()[-5000:]))
            time.sleep(0.2)

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


class Worker(OdooProcess):
    """An ``odoo celery worker`` process, ready to consume."""

    def __init__(self, database, broker_url, name, *args, **options):
        conf = write_conf("worker-" + name, broker_url, **options)
        super().__init__("worker-" + name, [
            "--addons-path=" + ADDONS_PATH, "celery", "worker", "-c", str(conf), "-d", database,
            "--hostname", "pytest-%s@%%h" % name] + list(args))
        self.wait_for(lambda: " ready." in self.output())


WORKER_KINDS = ("HighPriorityCeleryWorker", "DefaultCeleryWorker", "LowPriorityCeleryWorker")


class Server(OdooProcess):
    """``odoo --workers=2 --load=web,queue_celery`` on its own port, serving."""

    def __init__(self, database, broker_url, kinds=WORKER_KINDS, **options):
        self.port = free_port()
        conf = write_conf("server", broker_url, **options)
        super().__init__("server-%d" % self.port, [
            "-c", str(conf), "-d", database, "--db-filter=^%s$" % database, "--workers=2",
            "--load=web,queue_celery", "--http-interface=127.0.0.1", "--http-port=%d" % self.port,
            "--longpolling-port=%d" % free_port(), "--max-cron-threads=0"])
        self.wait_for(lambda: all("Worker %s (" % kind in self.output() for kind in kinds))
        self.wait_for(lambda: self.get("/web/login")[0] == 200)

    def get(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path)) as answer:
                return answer.status, answer.read()
        except OSError:
            return None, b""

    def rpc(self, database, model, method, *args, **kwargs):
        body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {
            "service": "object", "method": "execute_kw",
            "args": [database, 1, "admin", model, method, list(args), kwargs]}}).encode()
        request = urllib.request.Request("http://127.0.0.1:%d/jsonrpc" % self.port, body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            reply = json.loads(answer.read())
        if "error" in reply:
            raise RuntimeError(reply["error"]["data"]["message"])
        return reply["result"]

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


@pytest.fixture(scope="module", params=list(BROKERS))
def broker(request):
    """Each broker in turn: its URL, set for publishing from this process."""
    url, port = BROKERS[request.param]
    if port:
        require_port(request.param, port)
    use_broker(url)
    yield url
    use_broker("")


@pytest.fixture(scope="module")
def worker(database, broker):
    """A worker with two processes on all queues of the current broker."""
    process = Worker(database, broker, "default", "--concurrency", "2")
    yield process
    process.stop()


@pytest.fixture
def env(database):
    """A superuser environment on its own cursor; tests commit to publish their jobs."""
    registry = odoo.registry(database)
    with api.Environment.manage():
        cr = registry.cursor()
        try:
            yield api.Environment(cr, SUPERUSER_ID, {})
        finally:
            cr.rollback()
            cr.close()


@pytest.fixture
def sweeper_settings(database):
    """``configure(grace, republish_after)``: the sweeper's delays (seconds) for one test."""
    def configure(grace, republish_after):
        with api.Environment.manage(), odoo.registry(database).cursor() as cr:
            params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
            params.set_param("queue_celery.sweep_grace_seconds", str(grace))
            params.set_param("queue_celery.republish_after_seconds", str(republish_after))

    yield configure
    configure(30, 3600)


def query(database, sql, params=()):
    """Rows of ``sql`` read in a transaction of its own."""
    with odoo.sql_db.db_connect(database).cursor() as cr:
        cr.execute(sql, params)
        return cr.fetchall()


def wait_for_jobs(database, job_ids, states=FINAL_STATES, timeout=60):
    """Wait until every job is in one of ``states``; return {id: state}."""
    deadline = time.time() + timeout
    while True:
        found = dict(query(database, "SELECT id, state FROM celery_job WHERE id IN %s",
                           (tuple(job_ids),)))
        if all(found.get(job_id) in states for job_id in job_ids) or time.time() > deadline:
            return found
        time.sleep(0.1)


def count_rows(database, marker):
    return query(database, "SELECT count(*) FROM queue_celery_test_record WHERE marker = %s",
                 (marker,))[0][0]
