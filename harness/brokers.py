"""The brokers a run uses: the embedded one, the machine's Redis and RabbitMQ, a private Redis."""
import os
import socket
import subprocess
import time

import pytest

from harness.site import free_port

# name: (URL, port that must answer on 127.0.0.1); '' is the embedded broker on PostgreSQL.
BROKERS = {
    "embedded": ("", None),
    "redis": ("redis://127.0.0.1:6379/7", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


def require_port(name, port):
    """Skip the test when ``name`` does not answer on ``port``; fail it in CI."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        message = "%s is not running on 127.0.0.1:%d" % (name, port)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must test every broker)")
        pytest.skip(message)


class RedisServer:
    """A Redis server of one test alone, which keeps nothing on disk (lost on restart)."""

    def __init__(self):
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d/0" % self.port
        self.process = None
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while subprocess.call(["redis-cli", "-p", str(self.port), "ping"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            assert time.time() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
