#!/usr/bin/env python3
"""``make bench``: queue_celery's figures beside bare Celery, raw SQL and OCA queue_job.

Every figure is the median of ``--runs`` runs (3), measured in this run beside its
baseline, which runs interleaved with it on the same machine, broker and concurrency.
A full run writes BENCHMARKS.md at the repository root; ``--quick`` (small counts, the
measurements of QUICK_MEASUREMENTS on Redis and the embedded broker: under 3 minutes)
writes ``.run/bench/BENCHMARKS-quick.md`` instead. ``--only NAME`` runs one measurement and
merges it into the last full results (.run/bench/results.json). ``--versions 11,18`` adds
the end-to-end figures of each Odoo version beside bare Celery (e2e.measure_versions); with
``--only versions``, only that section of BENCHMARKS.md is rewritten.

One module per concern: e2e.py (end-to-end, queue_job's and each Odoo version's too), enqueue.py, latency.py
(latency and priority), scale.py, drain.py (a million jobs drained, only when asked for), metrics.py (the metrics
page), memory.py (rss), report.py; rig.py is what they share.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

# The repository root, for the harness and this folder's modules as the bench package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness  # noqa: E402  (imports odoo as this Odoo version starts)
import odoo  # noqa: E402
from bench import drain, e2e, enqueue, latency, memory, metrics, report, scale  # noqa: E402
from bench.rig import (  # noqa: E402
    BENCH,
    DB_BROKER,
    DB_QC,
    DB_QJ,
    OUTPUT,
    QJ_ADDONS,
    delete_broker_queues,
    ensure_database,
    ensure_queue_job_addons,
    log,
)
from harness import ODOO_VERSION, ROOT  # noqa: E402

# The full run's counts: ~25 minutes on a quiet 2-core machine, most of it queue_job (~60 jobs/s).
FULL_COUNTS = dict(e2e=5000, e2e_embedded=5000, qj_e2e=5000, enqueue=10000, qj_enqueue=10000,
                    light=30, load_rate=100, load_seconds=10, low=5000, high=20,
                    scale=1000000, rss=10000, batch=5000, versions=2000, channel=1000, backlog=2000,
                    layout=2000, drain=1000000)
QUICK_COUNTS = dict(e2e=200, e2e_embedded=100, qj_e2e=100, enqueue=500, qj_enqueue=200, light=10,
                    load_rate=50, load_seconds=2, low=500, high=10, scale=20000, rss=300,
                    batch=200, versions=100, channel=100, backlog=300, layout=200,
                    drain=2000)
MEASUREMENTS = ("e2e", "layout", "enqueue", "latency", "priority", "queue_job", "scale", "backlog",
                "metrics", "rss", "batch", "versions", "channel", "drain")
# Run only when asked for (--only): a million jobs take about an hour per broker.
ASKED_ONLY = ("drain",)
# What --quick measures without --only, on Redis and the embedded broker (under 3 minutes):
# the figures of the issue 16 targets.
QUICK_MEASUREMENTS = ("e2e", "layout", "enqueue", "latency", "backlog")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for development")
    parser.add_argument("--only", choices=MEASUREMENTS, action="append",
                        help="run only this measurement (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median; >= 3)")
    parser.add_argument("--brokers", help="default: redis,rabbitmq,embedded; redis,embedded"
                                          " with --quick")
    parser.add_argument("--versions", default=str(ODOO_VERSION.major),
                        help="Odoo versions whose end-to-end figures to compare, e.g. 11,18")
    parser.add_argument("--results", type=Path,
                        help="write the results to this file only, no report (another"
                             " version's run measuring for --versions)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the worker's pool during the first end-to-end run")
    parser.add_argument("--report", action="store_true",
                        help="only rewrite BENCHMARKS.md from the last full results")
    parser.add_argument("--reuse-db", action="store_true",
                        help="keep and reuse the bench databases (development)")
    options = parser.parse_args()
    counts = QUICK_COUNTS if options.quick else FULL_COUNTS
    if options.report:
        name = "results-quick.json" if options.quick else "results.json"
        results = json.loads((OUTPUT / name).read_text())
        results.setdefault("command", "make bench")
        write(results, OUTPUT / "BENCHMARKS-quick.md" if options.quick else
              ROOT / "BENCHMARKS.md", options.only)
        return
    versions = [int(major) for major in options.versions.split(",")]
    # OCA queue_job is measured where the bench installs it from PyPI: Odoo 11 (QUEUE_JOB_VERSION).
    with_qj = ODOO_VERSION.major == 11
    # A full run compares versions only when asked to: its own e2e figures are the rest.
    only = options.only or [name for name in MEASUREMENTS if name not in ASKED_ONLY
                            and (name != "versions" or len(versions) > 1)
                            and (name != "queue_job" or with_qj)
                            and (name in QUICK_MEASUREMENTS or not options.quick)]
    brokers = [broker for broker in (options.brokers or (
        "redis,embedded" if options.quick else "redis,rabbitmq,embedded")).split(",") if broker]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wants_qj = with_qj and ("queue_job" in only or "enqueue" in only)
    if wants_qj:
        ensure_queue_job_addons()  # before the addons path of this process is set

    harness.start_odoo("bench", extra_addons=[BENCH / "addons"] + [QJ_ADDONS] * wants_qj,
                       celery_broker_db=DB_BROKER)
    results_path = options.results or OUTPUT / (
        "results-quick.json" if options.quick else "results.json")
    results = json.loads(results_path.read_text()) if options.only and results_path.exists() \
        and not options.results else {}
    results.update(counts=counts, runs=options.runs, date=time.strftime("%Y-%m-%d %H:%M"),
                   load_start=" ".join("%.2f" % load for load in os.getloadavg()))
    started = time.time()
    try:
        results["machine"] = report.machine_facts()
        ensure_database(DB_QC, "queue_celery_bench", options.reuse_db)
        if wants_qj:
            ensure_database(DB_QJ, "queue_job_bench", options.reuse_db)
        if "e2e" in only:
            results["e2e"] = e2e.measure_e2e(counts, options.runs, brokers, options.profile)
        if "layout" in only:
            # One default worker and the shipped count; --quick only what `make run` ships.
            from odoo.addons.queue_celery.core.settings import OPTIONS
            shipped = OPTIONS["workers_default"].default
            results["layout"] = e2e.measure_layout(counts, options.runs, brokers,
                                                   (shipped,) if options.quick else (1, shipped))
        if "enqueue" in only:
            results["enqueue"] = enqueue.measure_enqueue(counts, options.runs, wants_qj)
        if "latency" in only:
            results["latency"] = latency.measure_latency(counts, options.runs, brokers, results.get("e2e"))
        if "priority" in only:
            results["priority"] = latency.measure_priority(counts, options.runs)
        if "queue_job" in only:
            results["queue_job"] = e2e.measure_queue_job_e2e(counts, options.runs)
        if "scale" in only:
            results["scale"] = scale.measure_scale(counts, options.runs)
        if "metrics" in only:
            results["metrics"] = metrics.measure_metrics(counts, options.runs)
        if "backlog" in only:
            results["backlog"] = scale.measure_backlog(counts, options.runs)
        if "rss" in only:
            results["rss"] = memory.measure_rss(counts, options.runs)
        if "batch" in only:
            results["batch"] = e2e.measure_batch(counts, options.runs, brokers[0])
        if "channel" in only:
            results["channel"] = e2e.measure_channel(counts, options.runs, brokers[0])
        if "drain" in only:
            results["drain"] = drain.measure_drain(counts, options.runs, brokers)
        if "versions" in only:
            results["versions"] = e2e.measure_versions(counts, options.runs, brokers, versions,
                                                       options.quick)
    finally:
        harness.stop_all()
        delete_broker_queues()
        odoo.sql_db.close_all()
        for dbname in (DB_BROKER,) if options.reuse_db else (DB_QC, DB_QJ, DB_BROKER):
            harness.drop_database(dbname)
    results["load_end"] = " ".join("%.2f" % load for load in os.getloadavg())
    results["seconds"] = round(time.time() - started)
    results_path.write_text(json.dumps(results, default=str))
    if options.results:
        return
    report_path = OUTPUT / "BENCHMARKS-quick.md" if options.quick else ROOT / "BENCHMARKS.md"
    command = "make bench" if not options.quick and not options.only else \
        os.path.relpath(sys.executable, ROOT) + " bench/run.py " + " ".join(sys.argv[1:])
    results["command"] = command
    results_path.write_text(json.dumps(results, default=str))
    write(results, report_path, only)
    for row in report.build_rows(results):
        print("  ".join(cell for cell in row if cell))
    log("wrote %s in %d s", report_path.relative_to(ROOT), results["seconds"])


def write(results, path, only):
    """The report at ``path``; after ``--only`` one of report.SECTIONS, only that section:
    the rest keeps the last full run's figures."""
    if len(only) == 1 and only[0] in report.SECTIONS:
        report.write_section(results, path, only[0])
    else:
        report.write_report(results, path, results["command"])


if __name__ == "__main__":
    main()
