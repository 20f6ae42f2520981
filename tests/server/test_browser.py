"""Settings > Jobs in headless Chromium: a plain user and a job manager, live notifications.

A real Odoo server (threaded, so that it serves the bus itself), a real worker on the embedded
broker, and tests/server/browser/jobs_screens.js driving Chromium through playwright-core, told
the web client's differences by harness.browser.WEB_CLIENT. Screenshots go to
.run/screenshots/ (Odoo 11) or .run/screenshots/18/, as docs/screenshots/ holds them.
"""
import json
import os
import subprocess
import time

import pytest

from harness import ROOT
from harness.browser import (
    CHROMIUM,
    SCREENSHOTS,
    USER_LOGIN,
    USER_PASSWORD,
    WEB_CLIENT,
    missing_tools,
)

DRIVER = ROOT / "tests" / "server" / "browser" / "jobs_screens.js"

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
                           QC_SHOTS=str(SCREENSHOTS), QC_CHROMIUM=CHROMIUM,
                           QC_WEB_CLIENT=json.dumps(WEB_CLIENT)))
    print(result.stdout, result.stderr, f"{time.time() - started:.1f} s")
    assert result.returncode == 0 and "passed: " + scenario in result.stdout, \
        result.stdout + result.stderr


def test_plain_user_sees_own_jobs_and_gets_done_notification(site):
    """Jobs app, own failed job without Retry, a job enqueued over RPC notifies when done."""
    names = site[1]
    drive(site, "user", USER_LOGIN, USER_PASSWORD, names["user"], names["manager"])
    assert (SCREENSHOTS / "job-done-notification.png").exists()


def test_manager_retries_failed_job_from_form_and_gets_failure_notification(site):
    """Settings > Jobs, every user's jobs, Retry on the form, a warning when it fails again."""
    names = site[1]
    drive(site, "manager", "admin", "admin", names["manager"], names["user"])
    for name in ("jobs-list", "job-failed-form", "job-failed-notification"):
        assert (SCREENSHOTS / f"{name}.png").exists()
