"""The prefork server with its Celery workers, RPC clients, and the web client in Chromium."""
import contextlib
import os
import signal
import uuid

import psutil
import pytest

from harness import ADMIN_UID, WORKER_KINDS, Server, Worker, as_user, environment, use_broker, wait_for_jobs
from harness.browser import USER_LOGIN, USER_PASSWORD, ThreadedServer, missing_tools


@pytest.fixture(scope="module")
def server(database):
    """A prefork server on the embedded broker, two Celery workers on the default queue."""
    use_broker("")
    process = Server(database, "", celery_workers_default=2)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def threaded(database):
    """Odoo's threaded server (``--workers=0``) on the embedded broker: two Celery workers on
    the default queue, one on each other."""
    use_broker("")
    process = Server(database, "", workers=0, celery_workers_default=2)
    yield process
    process.stop()


@pytest.fixture
def lone_threaded(database):
    """A threaded server of one test, and its Celery workers' pids: whatever the test did,
    neither is left running."""
    use_broker("")
    process = Server(database, "", workers=0)
    pids = [pid for pids in process.queue_workers().values() for pid in pids]
    yield process, pids
    process.stop(signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()


@pytest.fixture(scope="module")
def metrics_token():
    return uuid.uuid4().hex


@pytest.fixture(scope="module")
def metrics_server(database, metrics_token):
    """A prefork server with a metrics token, whose `low` queue has no worker: its jobs wait."""
    use_broker("")
    process = Server(database, "", kinds=WORKER_KINDS[:2], celery_workers_low=0,
                     celery_metrics_token=metrics_token, celery_retry_backoff=0.1)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def users(database):
    """Two plain internal users: {name: (uid, login)}, each one's password is their login."""
    logins = {}
    with environment(database) as env:
        for name in ("mallory", "alice"):
            login = "%s-%s" % (name, uuid.uuid4().hex[:8])
            user = env["res.users"].with_context(no_reset_password=True).create({
                "name": name, "login": login, "password": login,
                "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
            logins[name] = (user.id, login)
    return logins


@pytest.fixture(scope="module")
def people(database):
    """{role: Client factory argument (uid, password)} for each kind of attacker."""
    with environment(database) as env:
        other_company = env["res.company"].create({"name": "Other company %s" % uuid.uuid4().hex})
        internal = env.ref("base.group_user")
        manager_group = env.ref("queue_celery.group_celery_job_manager")
        people = {}
        for role, groups, company in (
                ("manager", [internal, manager_group], env.ref("base.main_company")),
                ("other_manager", [internal, manager_group], other_company),
                ("plain", [internal], env.ref("base.main_company")),
                ("portal", [env.ref("base.group_portal")], env.ref("base.main_company"))):
            login = "%s-%s" % (role, uuid.uuid4().hex[:8])
            user = env["res.users"].with_context(no_reset_password=True).create({
                "name": role, "login": login, "password": login,
                "company_id": company.id, "company_ids": [(6, 0, [company.id])],
                "groups_id": [(6, 0, [group.id for group in groups])]})
            people[role] = (user.id, login)
    return people


@pytest.fixture(scope="module")
def tools():
    """Chromium, node and playwright-core, or the browser tests are skipped (failed in CI)."""
    reason = missing_tools()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run the browser tests")
        pytest.skip(reason)



@pytest.fixture(scope="module")
def site(tools, database):
    """Users, finished jobs of each, a worker and a server; the names of the failed jobs."""
    use_broker("")
    worker = Worker(database, "", "browser", "--concurrency", "1")
    server = names = None
    try:
        names = create_jobs(database)
        server = ThreadedServer(database)
        yield server, names
    finally:
        if server:
            server.stop()
        worker.stop()
        if names:
            cancel_waiting_jobs(database, names["tag"])


def cancel_waiting_jobs(database, tag):
    """Leave no job of these tests waiting in the database the other tests share."""
    with environment(database) as env:
        env["celery.job"].search([("state", "in", ("pending", "enqueued")),
                                  ("name", "like", tag)]).button_cancel()


def create_jobs(database):
    """A plain user and the admin, each with a failed and a done job; the failed ones' names."""
    with environment(database) as env:
        user = env["res.users"].search([("login", "=", USER_LOGIN)]) or env["res.users"].create({
            "name": "Bob Plain", "login": USER_LOGIN, "password": USER_PASSWORD,
            "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
        admin = env["res.users"].browse(ADMIN_UID)
        admin.password = "admin"
        tag = uuid.uuid4().hex[:6]
        names = {"user": f"Import customers.csv {tag}", "manager": f"Nightly stock sync {tag}",
                 "tag": tag}
        jobs = env["celery.job"]
        for owner, failing, done in ((user, names["user"], f"Send newsletter {tag}"),
                                     (admin, names["manager"], f"Rebuild search index {tag}")):
            jobs |= as_user(env["celery.job"], owner).enqueue(
                "queue.celery.test.record", "make_then_fail", args=[failing], description=failing)
            jobs |= as_user(env["celery.job"], owner).enqueue(
                "queue.celery.test.record", "make", args=[done], description=done)
        # Waiting jobs, for the list to show more than finished ones.
        later = env["celery.job"].enqueue("queue.celery.test.record", "make", args=[tag],
                                          countdown=3600, description=f"Monthly report {tag}")
        env["celery.job"].enqueue("queue.celery.test.record", "make", args=[tag], countdown=3600,
                                  queue="low", description=f"Archive old logs {tag}")
        later.button_cancel()
    assert set(wait_for_jobs(database, jobs.ids).values()) == {"done", "failed"}
    return names
