"""Bare Celery: a no-op task, no Odoo and no job record, the baseline of bench/e2e.py and memory.py.

Configured from the environment: BENCH_BROKER (a URL; ``embedded`` for queue_celery's
transport on PostgreSQL, BENCH_BROKER_PG its SQLAlchemy URL), BENCH_QUEUE, and BENCH_DONE:
a file each finished task appends its end time to (8 bytes), so the bench can count them.
"""
import importlib.util
import os
import struct
import sys
import time
from pathlib import Path

from celery import Celery

ROOT = Path(__file__).resolve().parents[1]


def broker_url():
    url = os.environ["BENCH_BROKER"]
    if url != "embedded":
        return url
    # queue_celery's own transport (plain kombu), loaded without importing Odoo.
    spec = importlib.util.spec_from_file_location(
        "qc_bench_broker", ROOT / "core" / "broker.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["qc_bench_broker"] = module
    spec.loader.exec_module(module)  # registers the odoopg+ transport alias
    return os.environ["BENCH_BROKER_PG"]


URL = broker_url()
QUEUE = os.environ.get("BENCH_QUEUE", "bench.bare")
app = Celery("bare", broker=URL, set_as_current=True)
app.conf.update(
    task_serializer="json", accept_content=["json"], task_ignore_result=True,
    result_backend=None, task_acks_late=True, worker_prefetch_multiplier=1,
    task_default_queue=QUEUE, worker_hijack_root_logger=False,
    broker_transport_options={"visibility_timeout": 3600},
)
_done = None


@app.task(name="bench.noop")
def noop():
    global _done
    if _done is None:
        _done = os.open(os.environ["BENCH_DONE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(_done, struct.pack("d", time.time()))
