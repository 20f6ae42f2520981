"""End-to-end throughput: queue_celery's jobs beside bare Celery tasks and OCA queue_job."""
import collections
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import celery
import psutil

import odoo
from bench.rig import (
    DB_QC,
    DB_QJ,
    OUTPUT,
    bare_worker,
    broker_url,
    celery_worker,
    clear_jobs,
    embedded_url,
    enqueue_jobs,
    enqueue_one,
    environment,
    jobs_done_check,
    log,
    percentile,
    start_latencies,
    tasks_done_check,
    use_broker,
    wait_for,
)
from harness import ODOO_VERSION, QUEUE_PREFIX, OdooProcess, Server, free_port, query, write_conf
from harness.odoo_version import PYTHONS


def measure_e2e(counts, runs, brokers, profile=False):
    """End-to-end: jobs enqueued (100 per transaction) and run by a 2-process worker, from
    the first enqueue until the last is done; bare Celery no-op tasks beside it. With
    ``profile``, py-spy samples the worker's pool during the first run."""
    from odoo.addons.queue_celery.core import celeryapp  # noqa: F401  (odoopg transport alias)
    results = {}
    for broker in brokers:
        count = counts["e2e_embedded" if broker == "embedded" else "e2e"]
        use_broker(broker)
        done_file = OUTPUT / "bare-done.bin"
        worker = celery_worker(broker, "e2e")
        bare = bare_worker(broker, done_file)
        bare_app = celery.Celery("bare-publisher", broker=broker_url(broker) or embedded_url(),
                                 set_as_current=False)
        ours, theirs = [], []
        try:
            for run in range(runs):
                clear_jobs()
                spies = profile_children(worker, broker) if profile and not run else []
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
                        bare_app.send_task("bench.noop", queue=QUEUE_PREFIX + "bare", producer=producer)
                ended = wait_for(tasks_done_check(done_file, count), count / 5 + 60)
                theirs.append(count / (ended - started))
                log("e2e %s run %d: queue_celery %.0f jobs/s, bare Celery %.0f tasks/s",
                    broker, run + 1, ours[-1], theirs[-1])
        finally:
            worker.stop()
            bare.stop()
        results[broker] = {"queue_celery": ours, "bare_celery": theirs, "count": count}
    return results


def measure_layout(counts, runs, brokers, layouts):
    """``make run``'s own layout: ``odoo --workers=2 --load=web,queue_celery`` forking
    ``celery_workers_default`` solo workers for the default queue (each of ``layouts``),
    the same no-op jobs (100 per transaction) timed until the last is done; beside it as
    many bare Celery solo workers on one queue."""
    results = {}
    count = counts["layout"]
    for broker in brokers:
        use_broker(broker)
        done_file = OUTPUT / "bare-done.bin"
        bare_app = celery.Celery("bare-publisher", broker=broker_url(broker) or embedded_url(),
                                 set_as_current=False)
        for processes in layouts:
            server = Server(DB_QC, broker_url(broker), celery_workers_default=processes)
            bares = [bare_worker(broker, done_file, "solo", 1, index)
                     for index in range(processes)]
            ours, theirs = [], []
            try:
                for _run in range(runs):
                    clear_jobs()
                    check = jobs_done_check(DB_QC, "celery_job", count)
                    started = time.time()
                    enqueue_jobs(DB_QC, "queue.celery.bench", count)
                    ours.append(count / (wait_for(check, count / 5 + 60) - started))

                    done_file.write_bytes(b"")
                    started = time.time()
                    with bare_app.producer_or_acquire() as producer:
                        for _ in range(count):
                            bare_app.send_task("bench.noop", queue=QUEUE_PREFIX + "bare",
                                               producer=producer)
                    ended = wait_for(tasks_done_check(done_file, count), count / 5 + 60)
                    theirs.append(count / (ended - started))
                    log("layout %s, %d default worker(s): queue_celery %.0f jobs/s, bare Celery"
                        " %.0f tasks/s", broker, processes, ours[-1], theirs[-1])
            finally:
                server.stop()
                for bare in bares:
                    bare.stop()
            results["%s-%d" % (broker, processes)] = {
                "queue_celery": ours, "bare_celery": theirs, "count": count,
                "broker": broker, "processes": processes}
    return results


def measure_batch(counts, runs, broker):
    """A batch's cost end to end: ``count`` no-op jobs enqueued in one transaction as one
    batch (``group(...).delay()``: each job's end counts itself off the batch's row), against
    the same jobs enqueued alone in one transaction, run by a 2-process worker."""
    from odoo.addons.queue_celery import group

    count = counts["batch"]
    use_broker(broker)
    worker = celery_worker(broker, "batch")
    rates = {"batch": [], "alone": []}
    try:
        for run in range(runs):
            for kind in ("alone", "batch"):
                clear_jobs()
                query(DB_QC, "DELETE FROM celery_job_batch")
                check = jobs_done_check(DB_QC, "celery_job", count)
                started = time.time()
                with environment(DB_QC) as env:
                    records = env["queue.celery.bench"]
                    if kind == "batch":
                        group(*[records.delayable().noop() for _ in range(count)]).delay()
                    else:
                        for _ in range(count):
                            records.with_delay().noop()
                ended = wait_for(check, count / 5 + 60)
                rates[kind].append(count / (ended - started))
            if query(DB_QC, "SELECT count(*) FROM celery_job_batch WHERE state = 'ended'"
                            " AND jobs_left = 0") != [(1,)]:
                raise RuntimeError("the batch did not end with its last job")
            log("batch %s run %d: %.0f jobs/s in a batch, %.0f jobs/s alone", broker, run + 1,
                rates["batch"][-1], rates["alone"][-1])
    finally:
        worker.stop()
    return dict(rates, count=count, broker=broker)


def measure_channel(counts, runs, broker):
    """The channel machinery's cost: ``count`` no-op jobs through a channel of capacity 2
    (each claim admitted in PostgreSQL under its channel's lock, each end releasing what
    it held) against the same jobs in no channel, enqueued 100 per transaction and run by a
    2-process worker; and the start latency of one job at a time in that channel and in
    none (from the enqueuing commit to its start)."""
    count = counts["channel"]
    use_broker(broker)
    with environment(DB_QC) as env:
        if not env["celery.job.channel"].search([("name", "=", "root.bench")]):
            env["celery.job.channel"].create({"name": "root.bench", "capacity": 2})
    worker = celery_worker(broker, "channel")
    rates = {"channel": [], "none": []}
    latencies = {"channel": [], "none": []}
    try:
        for run in range(runs):
            for kind, channel in (("none", None), ("channel", "root.bench")):
                clear_jobs()
                check = jobs_done_check(DB_QC, "celery_job", count)
                started = time.time()
                enqueue_jobs(DB_QC, "queue.celery.bench", count, channel=channel)
                ended = wait_for(check, count / 5 + 60)
                rates[kind].append(count / (ended - started))
                clear_jobs()
                job_times = {}
                for _ in range(counts["light"]):
                    job_id, committed = enqueue_one(DB_QC, channel=channel)
                    job_times[job_id] = committed
                    wait_for(jobs_done_check(DB_QC, "celery_job", len(job_times)), 30,
                             interval=0.002)
                    time.sleep(0.02)
                latencies[kind].append(start_latencies(job_times))
            log("channel %s run %d: %.0f jobs/s in a channel of capacity 2, %.0f jobs/s in"
                " none; start p50 %.1f ms in it, %.1f ms in none", broker, run + 1,
                rates["channel"][-1], rates["none"][-1],
                1000 * percentile(latencies["channel"][-1], 50),
                1000 * percentile(latencies["none"][-1], 50))
    finally:
        worker.stop()
    return dict(rates=rates, latencies=latencies, count=count, broker=broker)


def measure_versions(counts, runs, brokers, versions, quick):
    """End-to-end as measure_e2e (``versions`` jobs per run) on each Odoo version in
    ``versions``, one after the other: this interpreter's here, each other one by bench/run.py
    under that version's virtualenv, each beside bare Celery in its own runs."""
    results = {}
    for major in versions:
        if major == ODOO_VERSION.major:
            figures = measure_e2e(dict(counts, e2e=counts["versions"],
                                       e2e_embedded=counts["versions"]), runs, brokers)
            results[str(major)] = dict(figures, odoo=odoo.release.version,
                                       celery=celery.__version__)
            continue
        output = OUTPUT / ("versions-%d.json" % major)
        log("end-to-end on Odoo %d: bench/run.py under %s", major, PYTHONS[major])
        subprocess.run([str(PYTHONS[major]), str(Path(__file__).with_name("run.py")),
                        "--only", "versions", "--versions", str(major), "--runs", str(runs),
                        "--brokers", ",".join(brokers), "--results", str(output)]
                       + ["--quick"] * quick, check=True)
        results[str(major)] = json.loads(output.read_text())["versions"][str(major)]
    return results


def measure_queue_job_e2e(counts, runs):
    """OCA queue_job: the same no-op jobs (100 per transaction) run by its jobrunner
    (channel root:2) through the prefork server's 2 HTTP workers."""
    count = counts["qj_e2e"]
    conf = write_conf("queue-job")
    with open(conf, "a") as options:
        options.write("\n[queue_job]\nchannels = root:2\n")
    query(DB_QJ, "DELETE FROM queue_job")
    server = OdooProcess("queue-job-server", [
        "-c", str(conf), "-d", DB_QJ, "--db-filter=^%s$" % DB_QJ, "--workers=2",
        "--load=web,queue_job", "--max-cron-threads=0", "--http-interface=127.0.0.1",
        "--http-port=%d" % free_port()] + ODOO_VERSION.realtime_port_args(free_port()))
    server.wait_for(lambda: "queue job runner ready for db" in server.output(), timeout=120)
    rates = []
    try:
        for run in range(runs):
            query(DB_QJ, "DELETE FROM queue_job")
            check = jobs_done_check(DB_QJ, "queue_job", count)
            started = time.time()
            enqueue_jobs(DB_QJ, "queue.job.bench", count)
            ended = wait_for(check, count / 2 + 120)
            rates.append(count / (ended - started))
            log("queue_job e2e run %d: %.0f jobs/s", run + 1, rates[-1])
    finally:
        server.stop()
        query(DB_QJ, "DELETE FROM queue_job")
    return {"queue_job": rates}


def profile_children(process, label):
    """py-spy (bench/requirements.txt) sampling each pool process until it is stopped."""
    spies = []
    for child in psutil.Process(process.process.pid).children():
        output = OUTPUT / ("profile-%s-%d.txt" % (label, child.pid))
        spies.append((output, subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(child.pid), "--format",
             "raw", "--rate", "200", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    time.sleep(1)
    return spies


def summarise_profiles(spies, top=40):
    """Stop the samplers; print the functions holding most samples (inclusive)."""
    if not spies:
        return
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
