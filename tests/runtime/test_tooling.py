"""Celery's own tools see our workers and the job task: celery inspect, Flower."""
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from harness import QUEUE_PREFIX, free_port, wait_for_jobs

CELERY = [str(Path(sys.executable).parent / "celery")]


def celery(url, *args):
    return subprocess.run(CELERY + ["--broker", url] + list(args), capture_output=True,
                          text=True, timeout=60).stdout


def test_celery_inspect_pings_our_worker_and_sees_the_running_job(env, database, redis_worker):
    url, _worker = redis_worker
    assert "pong" in celery(url, "inspect", "ping", "--timeout", "5")
    job = env["queue.celery.test.record"].with_delay().sleep_then_make(uuid.uuid4().hex, 3)
    env.cr.commit()
    wait_for_jobs(database, [job.id], states=("started",))
    active = celery(url, "inspect", "active", "--timeout", "5")
    assert "queue_celery.run_job" in active and job.uuid in active
    assert "%sdefault" % QUEUE_PREFIX in celery(url, "inspect", "active_queues", "--timeout", "5")
    wait_for_jobs(database, [job.id])


def test_flower_sees_the_worker_and_the_job_task(env, database, redis_worker):
    url, _worker = redis_worker
    port = free_port()
    flower = subprocess.Popen(CELERY + ["--broker", url, "flower", "--port=%d" % port,
                                        "--address=127.0.0.1"],
                              env=dict(os.environ, FLOWER_UNAUTHENTICATED_API="true"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        workers = {}
        while not any("queue_celery.run_job" in info.get("registered", [])
                      for info in workers.values()):
            assert time.time() < deadline, "Flower did not see the worker: %r" % workers
            time.sleep(1)
            try:
                with urllib.request.urlopen(
                        "http://127.0.0.1:%d/api/workers?refresh=1" % port) as answer:
                    workers = json.loads(answer.read())
            except OSError:
                continue
        job = env["queue.celery.test.record"].with_delay().make(uuid.uuid4().hex)
        env.cr.commit()
        wait_for_jobs(database, [job.id])
        deadline = time.time() + 30
        tasks = {}
        while job.celery_task_id not in tasks:
            assert time.time() < deadline, "Flower did not see the task"
            time.sleep(1)
            with urllib.request.urlopen("http://127.0.0.1:%d/api/tasks" % port) as answer:
                tasks = json.loads(answer.read())
        assert tasks[job.celery_task_id]["name"] == "queue_celery.run_job"
    finally:
        flower.terminate()
        flower.wait(10)
