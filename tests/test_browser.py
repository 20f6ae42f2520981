"""Settings > Jobs in headless Chromium: a plain user and a job manager, live notifications.

A real Odoo server (threaded, so that it answers /longpolling itself), a real worker on the
embedded broker, and tests/browser/jobs_screens.js driving Chromium through playwright-core.
Screenshots go to .run/screenshots/.
"""
import os
import shutil
import subprocess
import time
import urllib.request
import uuid

import pytest
from conftest import (
    ROOT,
    RUN,
    OdooProcess,
    Worker,
    free_port,
    use_broker,
    wait_for_jobs,
    write_conf,
)

import odoo
from odoo import SUPERUSER_ID, api

CHROMIUM = os.environ.get("QC_CHROMIUM", "/usr/bin/chromium")
DRIVER = ROOT / "tests" / "browser" / "jobs_screens.js"
SHOTS = RUN / "screenshots"
USER_LOGIN, USER_PASSWORD = "qc_browser_user", "qc-browser-user"


def missing_tools():
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not shutil.which("node"):
        return "node is missing"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "npm playwright-core is missing (npm install)"
    return None


# Skipped before any fixture runs (no database is made for nothing); in CI, tools() fails.
pytestmark = pytest.mark.skipif(bool(missing_tools()) and not os.environ.get("CI"),
                                reason=missing_tools() or "")


@pytest.fixture(scope="module")
def tools():
    reason = missing_tools()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run the browser tests")
        pytest.skip(reason)


class ThreadedServer(OdooProcess):
    """``odoo --workers=0`` on its own port: it serves /longpolling without a proxy."""

    def __init__(self, database):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__("browser-server", [
            "-c", str(write_conf("browser")), "-d", database, f"--db-filter=^{database}$",
            "--workers=0", "--max-cron-threads=0", "--http-interface=127.0.0.1",
            f"--http-port={self.port}"])
        # Not a request before the registry is loaded: a request thread importing modules
        # while the main thread loads them can deadlock on the import lock.
        self.wait_for(lambda: "Modules loaded." in self.output() and self.answers())

    def answers(self):
        try:
            with urllib.request.urlopen(self.url + "/web/login", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False


@pytest.fixture(scope="module")
def site(tools, database):
    """Users, finished jobs of each, a worker and a server; the names of the failed jobs."""
    use_broker("")
    worker = Worker(database, "", "browser", "--concurrency", "1")
    server = names = None
    try:
        names = seed_jobs(database)
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
    with api.Environment.manage(), odoo.registry(database).cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["celery.job"].search([("state", "in", ("pending", "enqueued")),
                                  ("name", "like", tag)]).button_cancel()


def seed_jobs(database):
    """A plain user and the admin, each with a failed and a done job; the failed ones' names."""
    with api.Environment.manage(), odoo.registry(database).cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        user = env["res.users"].search([("login", "=", USER_LOGIN)]) or env["res.users"].create({
            "name": "Bob Plain", "login": USER_LOGIN, "password": USER_PASSWORD,
            "groups_id": [(6, 0, [env.ref("base.group_user").id])]})
        admin = env.ref("base.user_root")
        admin.password = "admin"
        tag = uuid.uuid4().hex[:6]
        names = {"user": f"Import customers.csv {tag}", "manager": f"Nightly stock sync {tag}",
                 "tag": tag}
        jobs = env["celery.job"]
        for owner, failing, done in ((user, names["user"], f"Send newsletter {tag}"),
                                     (admin, names["manager"], f"Rebuild search index {tag}")):
            jobs |= env["celery.job"].sudo(owner).enqueue(
                "queue.celery.test.record", "make_then_fail", args=[failing], description=failing)
            jobs |= env["celery.job"].sudo(owner).enqueue(
                "queue.celery.test.record", "make", args=[done], description=done)
        # Waiting jobs, for the list to show more than finished ones.
        later = env["celery.job"].enqueue("queue.celery.test.record", "make", args=[tag],
                                          countdown=3600, description=f"Monthly report {tag}")
        env["celery.job"].enqueue("queue.celery.test.record", "make", args=[tag], countdown=3600,
                                  queue="low", description=f"Archive old logs {tag}")
        later.button_cancel()
    assert set(wait_for_jobs(database, jobs.ids).values()) == {"done", "failed"}
    return names


def drive(site, scenario, login, password, job_name, other_job_name):
    server, _names = site
    started = time.time()
    result = subprocess.run(
        ["node", str(DRIVER), scenario], check=False, capture_output=True, text=True, timeout=180,
        cwd=ROOT, env=dict(os.environ, QC_URL=server.url, QC_LOGIN=login, QC_PASSWORD=password,
                           QC_JOB_NAME=job_name, QC_OTHER_JOB_NAME=other_job_name,
                           QC_SHOTS=str(SHOTS), QC_CHROMIUM=CHROMIUM))
    print(result.stdout, result.stderr, f"{time.time() - started:.1f} s")
    assert result.returncode == 0 and "passed: " + scenario in result.stdout, \
        result.stdout + result.stderr


def test_plain_user_sees_own_jobs_and_gets_done_notification(site):
    """Jobs app, own failed job without Retry, a job enqueued over RPC notifies when done."""
    names = site[1]
    drive(site, "user", USER_LOGIN, USER_PASSWORD, names["user"], names["manager"])
    assert (SHOTS / "job-done-notification.png").exists()


def test_manager_retries_failed_job_from_form_and_gets_failure_notification(site):
    """Settings > Jobs, every user's jobs, Retry on the form, a warning when it fails again."""
    names = site[1]
    drive(site, "manager", "admin", "admin", names["manager"], names["user"])
    for name in ("jobs-list", "job-failed-form", "job-failed-notification"):
        assert (SHOTS / f"{name}.png").exists()
