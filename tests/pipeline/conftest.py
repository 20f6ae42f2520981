"""Jobs run by a real ``odoo celery worker`` on each broker in turn."""
import pytest

from harness import BROKERS, Worker, require_port, use_broker


@pytest.fixture(scope="module", params=list(BROKERS))
def broker(request):
    """Each broker in turn: its URL, set for publishing from this process."""
    url, port = BROKERS[request.param]
    if port:
        require_port(request.param, port)
    use_broker(url)
    yield url
    use_broker("")


@pytest.fixture(scope="module")
def worker(database, broker):
    """A worker with two processes on all queues of the current broker."""
    process = Worker(database, broker, "default", "--concurrency", "2")
    yield process
    process.stop()
