"""Settings > Jobs in headless Chromium: a plain user and a job manager, live notifications.

A real Odoo server (threaded, so that it answers /longpolling itself), a real worker on the
embedded broker, and tests/server/browser/jobs_screens.js driving Chromium through playwright-core.
Screenshots go to .run/screenshots/.
"""
import os
import subprocess
import time

import pytest

from harness import ROOT, RUN
from harness.browser import CHROMIUM, USER_LOGIN, USER_PASSWORD, missing_tools

DRIVER = ROOT / "tests" / "server" / "browser" / "jobs_screens.js"
SHOTS = RUN / "screenshots"

# Skipped before any fixture runs (no database is made for nothing); in CI, the tools fixture fails.
pytestmark = pytest.mark.skipif(bool(missing_tools()) and not os.environ.get("CI"),
                                reason=missing_tools() or "")


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
