"""Faults for real: killed workers, stopped brokers, a restarted PostgreSQL and server.

The sweeper runs from the tests (it is the cron's method) with the delays they set.
"""
import shutil

import pytest

from harness import RedisServer, environment, use_broker


@pytest.fixture
def sweeper_settings(database):
    """``configure(grace, republish_after)``: the sweeper's delays (seconds) for one test."""
    def configure(grace, republish_after):
        with environment(database) as env:
            params = env["ir.config_parameter"]
            params.set_param("queue_celery.sweep_grace_seconds", str(grace))
            params.set_param("queue_celery.republish_after_seconds", str(republish_after))

    yield configure
    configure(30, 3600)


@pytest.fixture
def sweep_now(sweeper_settings):
    """The sweeper acts at once on pending jobs and republishes every enqueued one."""
    sweeper_settings(0, 0)


@pytest.fixture
def eager_sweeper(sweeper_settings):
    """No grace; a job enqueued 10 s ago and not started is published again."""
    sweeper_settings(0, 10)


@pytest.fixture
def redis_server():
    """A private Redis server, set for publishing from this process."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisServer()
    use_broker(server.url)
    yield server
    use_broker("")
    server.stop()
