"""The Python 3.11 launcher, and Celery's own tools pointed at our workers."""
import pytest

from harness import BROKERS, Worker, require_port, use_broker


@pytest.fixture(scope="module")
def redis_worker(database):
    """A worker on Redis sending task events: (broker URL, worker)."""
    url, port = BROKERS["redis"]
    require_port("redis", port)
    use_broker(url)
    worker = Worker(database, url, "tooling", "--concurrency", "1", celery_task_events="True")
    yield url, worker
    worker.stop()
    use_broker("")
