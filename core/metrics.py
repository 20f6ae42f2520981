"""``GET /queue_celery/metrics``: the jobs in Prometheus' text format (version 0.0.4).

Read from the job table at each scrape, four read-only statements of the job store: no
state of its own, the same answer from any server of the database. Counts and ages are of the
whole table; the two histograms are of the jobs that ended in the last ``HISTOGRAM_WINDOW``
seconds (a scrape reads them as they are, `histogram_quantile` over them needs no `rate`);
the counters are sums over the jobs the table still holds (the cleanup cron's deletions
show as counter resets).
"""
import hmac
import itertools

from odoo.http import Response

from .. import odoo_version
from . import jobstore
from .celeryapp import QUEUES
from .models.celery_job import MANAGER_GROUP
from .settings import option

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HISTOGRAM_WINDOW = 300
RUN_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600)
START_LATENCY_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
                                 60, 300)
# Every value a label can take, for the jobs gauge to show zeros rather than no series.
LABEL_VALUES = {"state": jobstore.STATES, "queue": QUEUES}


def bearer_token_matches(authorization):
    """Whether an ``Authorization`` header carries ``celery_metrics_token`` (compared in
    constant time; an empty token opens nothing)."""
    token = option("metrics_token")
    scheme, _space, given = (authorization or "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _labels(names, values):
    def escaped(value):
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{%s}" % ",".join('%s="%s"' % (name, escaped(value))
                             for name, value in zip(names, values, strict=True))


def _number(value):
    return "+Inf" if value == float("inf") else repr(float(value))


class Exposition:
    """Metric families written one after the other, in Prometheus' text format."""

    def __init__(self):
        self.lines = []

    def family(self, name, kind, description):
        self.lines += ["# HELP %s %s" % (name, description), "# TYPE %s %s" % (name, kind)]

    def sample(self, name, label_names, label_values, value):
        self.lines.append("%s%s %s" % (name, _labels(label_names, label_values), _number(value)))

    def histogram(self, name, description, buckets, per_queue):
        """``per_queue``: {queue: (count, sum, [cumulative count per bucket])}."""
        self.family(name, "histogram", description)
        for queue in QUEUES:
            count, total, counts = per_queue.get(queue, (0, 0.0, [0] * len(buckets)))
            for bound, bucket_count in zip(buckets + (float("inf"),), counts + [count], strict=True):
                self.sample(name + "_bucket", ("queue", "le"), (queue, _number(bound)),
                            bucket_count)
            self.sample(name + "_sum", ("queue",), (queue,), total)
            self.sample(name + "_count", ("queue",), (queue,), count)

    def text(self):
        return "\n".join(self.lines) + "\n"


def exposition(cr):
    """Every metric of the jobs of ``cr``'s database, as the text Prometheus scrapes."""
    counted = jobstore.count_jobs(cr)
    width = len(jobstore.COUNTED_BY)
    jobs = dict.fromkeys(itertools.product(*(LABEL_VALUES.get(name, ())
                                             for name in jobstore.COUNTED_BY)), 0)
    failures = dict.fromkeys(QUEUES, 0)
    for row in counted:
        labels, count = row[:width], row[width]
        jobs[labels] = jobs.get(labels, 0) + count
        named = dict(zip(jobstore.COUNTED_BY, labels, strict=True))
        if named["state"] == jobstore.FAILED:
            failures[named["queue"]] = failures.get(named["queue"], 0) + count
    retries = dict(dict.fromkeys(QUEUES, 0), **jobstore.retries_per_queue(cr))
    ages = jobstore.oldest_waiting_ages(cr)
    histograms = jobstore.ended_job_histograms(cr, HISTOGRAM_WINDOW, RUN_SECONDS_BUCKETS,
                                               START_LATENCY_SECONDS_BUCKETS)
    out = Exposition()
    out.family("queue_celery_jobs", "gauge", "Jobs in the table, by state and queue.")
    for labels, count in sorted(jobs.items()):
        out.sample("queue_celery_jobs", jobstore.COUNTED_BY, labels, count)
    out.family("queue_celery_oldest_waiting_job_age_seconds", "gauge",
               "Seconds the oldest job due and waiting for a worker has waited (0: none).")
    for queue in QUEUES:
        out.sample("queue_celery_oldest_waiting_job_age_seconds", ("queue",), (queue,),
                   ages.get(queue, 0))
    out.histogram("queue_celery_job_run_seconds",
                  "Run time of the jobs ended in the last %d s." % HISTOGRAM_WINDOW,
                  RUN_SECONDS_BUCKETS,
                  {queue: histogram["run"] for queue, histogram in histograms.items()})
    out.histogram("queue_celery_job_start_latency_seconds",
                  "Seconds from handing to the broker (or eta) to start, of the jobs ended in"
                  " the last %d s." % HISTOGRAM_WINDOW, START_LATENCY_SECONDS_BUCKETS,
                  {queue: histogram["latency"] for queue, histogram in histograms.items()})
    for name, description, values in (
            ("queue_celery_job_retries_total", "Retries of the jobs in the table.", retries),
            ("queue_celery_job_failures_total", "Jobs in the table that ended failed.", failures)):
        out.family(name, "counter", description)
        for queue, value in sorted(values.items()):
            out.sample(name, ("queue",), (queue,), value)
    return out.text()


def respond(request):
    """The answer of ``GET /queue_celery/metrics`` (each version's controller): the jobs of
    the request's database in Prometheus' text format, for the bearer token of odoo.conf
    (``celery_metrics_token``) or a job manager's session; 404 without a database, 403 to
    anyone else."""
    if not request.db:
        return Response("No database selected\n", status=404, content_type="text/plain")
    if not (bearer_token_matches(request.httprequest.headers.get("Authorization"))
            or odoo_version.session_has_group(request, MANAGER_GROUP)):
        return Response("Forbidden\n", status=403, content_type="text/plain")
    return Response(exposition(request.env.cr), content_type=CONTENT_TYPE)
