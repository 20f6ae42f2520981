"""``GET /queue_celery/metrics`` over HTTP from a real server: Prometheus' parser reads it,
its numbers are the table's, and only a job manager's session or the bearer token of
odoo.conf opens it."""
import http.cookiejar
import json
import urllib.error
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import environment, query, wait_for_jobs
from odoo.addons.queue_celery.core import jobstore, metrics
from odoo.tools import config


def scrape(server, headers=None, session=None):
    """(status, content type, body) of the metrics page."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(session))
    request = urllib.request.Request("http://127.0.0.1:%d/queue_celery/metrics" % server.port,
                                     headers=headers or {})
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def logged_in(server, database, login):
    """The cookies of a web session of ``login`` (its password is its login)."""
    session = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(session))
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": {
        "db": database, "login": login, "password": login}}).encode()
    request = urllib.request.Request(
        "http://127.0.0.1:%d/web/session/authenticate" % server.port, body,
        {"Content-Type": "application/json"})
    with opener.open(request, timeout=60) as answer:
        assert "error" not in json.loads(answer.read())
    return session


def samples(body):
    """{(sample name, sorted labels): value} of a page, read by Prometheus' own parser."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body) for sample in family.samples}


def jobs_gauge(values):
    return {(labels[1][1], labels[0][1]): value for (name, labels), value in values.items()
            if name == "queue_celery_jobs"}


def test_a_job_managers_session_reads_the_metrics(metrics_server, database, people):
    status, content_type, body = scrape(metrics_server,
                                        session=logged_in(metrics_server, database,
                                                          people["manager"][1]))
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {family.name: family.type for family in text_string_to_metric_families(body)}
    assert families == {
        "queue_celery_jobs": "gauge", "queue_celery_oldest_waiting_job_age_seconds": "gauge",
        "queue_celery_job_run_seconds": "histogram",
        "queue_celery_job_start_latency_seconds": "histogram",
        "queue_celery_job_retries": "counter", "queue_celery_job_failures": "counter"}


def test_the_bearer_token_of_odoo_conf_reads_the_metrics(metrics_server, metrics_token):
    status, _content_type, body = scrape(metrics_server, {"Authorization": "Bearer " + metrics_token})
    assert status == 200
    assert jobs_gauge(samples(body))


@pytest.mark.parametrize("authorization", [
    lambda token: None, lambda token: "Bearer ", lambda token: "Bearer wrong",
    lambda token: "Bearer " + token[:-1], lambda token: "Bearer " + token + "x",
    lambda token: "Basic " + token, lambda token: token,
], ids=["none", "empty", "wrong", "truncated", "longer", "basic", "bare"])
def test_no_token_or_a_wrong_one_is_refused(metrics_server, metrics_token, authorization):
    header = authorization(metrics_token)
    status, _content_type, body = scrape(metrics_server,
                                         {"Authorization": header} if header else {})
    assert status == 403
    assert "queue_celery" not in body


@pytest.mark.parametrize("role", ["plain", "portal"])
def test_a_session_of_anyone_but_a_job_manager_is_refused(metrics_server, database, people,
                                                          role):
    session = logged_in(metrics_server, database, people[role][1])
    status, _content_type, body = scrape(metrics_server, session=session)
    assert status == 403
    assert "queue_celery" not in body


def test_a_session_whose_user_is_no_longer_a_job_manager_is_refused(metrics_server, database):
    login = "metrics-manager-%s" % uuid.uuid4().hex[:8]
    with environment(database) as env:
        manager_group = env.ref("queue_celery.group_celery_job_manager").id
        uid = env["res.users"].with_context(no_reset_password=True).create({
            "name": login, "login": login, "password": login, "groups_id": [(6, 0, [
                env.ref("base.group_user").id, manager_group])]}).id
    session = logged_in(metrics_server, database, login)
    assert scrape(metrics_server, session=session)[0] == 200
    # Through the server, whose HTTP workers then all see the change.
    metrics_server.rpc(database, "res.users", "write", [uid], {"groups_id": [(3, manager_group)]})
    assert scrape(metrics_server, session=session)[0] == 403


def test_an_empty_token_opens_nothing(metrics_token):
    saved = config.get("celery_metrics_token")
    try:
        config["celery_metrics_token"] = ""
        assert not metrics.bearer_token_matches("Bearer ")
        assert not metrics.bearer_token_matches("Bearer")
        config["celery_metrics_token"] = metrics_token
        assert metrics.bearer_token_matches("Bearer " + metrics_token)
    finally:
        config["celery_metrics_token"] = saved


def test_counts_and_ages_are_the_tables(metrics_server, metrics_token, database, env):
    def read():
        return samples(scrape(metrics_server, {"Authorization": "Bearer " + metrics_token})[2])

    before = read()
    # Due now on `low`, which no worker serves here: they wait, the oldest ages.
    waiting = [env["queue.celery.test.record"].with_delay(queue="low").make(uuid.uuid4().hex)
               for _job in range(3)]
    later = env["queue.celery.test.record"].with_delay(queue="low", countdown=3600).make("later")
    env.cr.commit()
    try:
        wait_for_jobs(database, [job.id for job in waiting], states=("enqueued",))
        after = read()
        table = {(state, queue): count for state, queue, count in query(
            database, "SELECT state, queue, count(*) FROM celery_job GROUP BY state, queue")}
        gauge = jobs_gauge(after)
        assert {key: value for key, value in gauge.items() if value} == table
        assert gauge["enqueued", "low"] == jobs_gauge(before)["enqueued", "low"] + 4
        assert set(gauge) >= {(state, queue) for state in ("pending", "enqueued", "started",
                                                           "done", "failed", "cancelled")
                              for queue in ("high", "default", "low")}
        age = ("queue_celery_oldest_waiting_job_age_seconds", (("queue", "low"),))
        (oldest,), = query(database, "SELECT extract(epoch FROM (now() at time zone 'UTC')"
                                     " - min(create_date)) FROM celery_job WHERE id IN %s",
                           (tuple(job.id for job in waiting),))
        assert 0 < after[age] <= float(oldest) + 1
    finally:
        (env["celery.job"].browse([job.id for job in waiting]) | later).button_cancel()
        env.cr.commit()


def test_runs_retries_and_failures_are_counted(metrics_server, metrics_token, database, env):
    def read():
        return samples(scrape(metrics_server, {"Authorization": "Bearer " + metrics_token})[2])

    def value(values, name, **labels):
        return values[name, tuple(sorted(dict(queue="default", **labels).items()))]

    # Where the histograms' window starts now (jobstore.NOW: the clock they are read with).
    window = "%s - make_interval(secs => %d)" % (jobstore.NOW, metrics.HISTOGRAM_WINDOW)
    window_start = query(database, "SELECT " + window)[0][0]
    before = read()
    records = env["queue.celery.test.record"]
    jobs = [records.with_delay().sleep_then_make(uuid.uuid4().hex, 0.3),
            records.with_delay().make_after_retries(uuid.uuid4().hex, 1),
            records.with_delay(max_retries=0).make_then_fail(uuid.uuid4().hex)]
    env.cr.commit()
    assert wait_for_jobs(database, [job.id for job in jobs]) == {
        jobs[0].id: "done", jobs[1].id: "done", jobs[2].id: "failed"}
    after = read()
    # The histograms' window slid meanwhile: the jobs of earlier tests it left behind.
    left_behind = query(database, "SELECT count(*) FROM celery_job WHERE queue = 'default'"
                                  " AND state IN ('done', 'failed') AND date_started IS NOT NULL"
                                  " AND date_done >= %s AND date_done < " + window,
                        (window_start,))[0][0]
    for name in ("queue_celery_job_run_seconds", "queue_celery_job_start_latency_seconds"):
        assert value(after, name + "_count") >= value(before, name + "_count") - left_behind + 3
        buckets = sorted((float(dict(labels)["le"]), count) for (sample, labels), count
                         in after.items() if sample == name + "_bucket"
                         and dict(labels)["queue"] == "default")
        counts = [count for _bound, count in buckets]
        assert counts == sorted(counts) and counts[-1] == value(after, name + "_count")
    assert value(after, "queue_celery_job_run_seconds_sum") >= 0.3
    # The sleeping job ran 0.3 s: above the 0.1 s bucket.
    assert value(after, "queue_celery_job_run_seconds_bucket", le="0.1") < value(
        after, "queue_celery_job_run_seconds_count")
    assert value(after, "queue_celery_job_retries_total") == value(
        before, "queue_celery_job_retries_total") + 1
    assert value(after, "queue_celery_job_failures_total") == value(
        before, "queue_celery_job_failures_total") + 1
