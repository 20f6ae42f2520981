"""Fixtures of every layer: Odoo in this process, the test database, an environment on it.

Where a test goes: README.md beside this file.
"""
import os
import subprocess

import pytest

import harness
from harness import ROOT

# Odoo in this process: the run's configuration, the test jobs addon beside the product's.
harness.start_odoo("pytest", extra_addons=[ROOT / "tests" / "addons"])


@pytest.fixture(scope="session")
def database():
    """A new database with queue_celery and the test jobs addon, dropped at the end."""
    name = "qc_pytest_%d" % os.getpid()
    harness.install_database(name, "queue_celery_test_jobs")
    # A copy for the tests of a worker serving two databases, made while nothing is connected.
    subprocess.run(["createdb", "-T", name, name + "_b"], check=True)
    yield name
    for dbname in (name, name + "_b"):
        harness.drop_database(dbname)


@pytest.fixture(scope="session")
def second_database(database):
    """A second database like ``database``."""
    return database + "_b"


@pytest.fixture
def env(database):
    """A superuser environment on its own cursor; tests commit to publish their jobs."""
    with harness.environment(database) as env:
        yield env
        env.cr.rollback()
