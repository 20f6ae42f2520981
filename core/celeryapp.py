"""The Celery application of this process, built from the settings, and publishing jobs.

Publishing needs only the task's name: the task itself is registered by the worker
(``worker.py``), the one kind of process that runs it.
"""
import collections
import datetime
import logging
import os

from celery import Celery
from kombu import Queue

from odoo.tools import config

from .. import odoo_version
from . import broker, execution, jobstore
from .settings import option

_logger = logging.getLogger(__name__)

QUEUES = ("high", "default", "low")
TASK_NAME = "queue_celery.run_job"
# Job priorities run from 0 (first) to 9 (last), as in Redis; RabbitMQ counts the other way.
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5
# How many ``testing.trap_jobs`` are open on each database: its jobs are not published.
TRAPPED = collections.Counter()


def queue_name(queue):
    """The broker's name of the job queue ``queue`` (one of QUEUES)."""
    return option("queue_prefix") + queue


def broker_url():
    """The configured broker URL, or the embedded broker's on Odoo's PostgreSQL."""
    url = option("broker_url")
    if url:
        return url
    dsn = {key: value for key, value in (
        ("host", config["db_host"]), ("port", config["db_port"]),
        ("user", config["db_user"]), ("password", config["db_password"])) if value}
    dbname = option("broker_db")
    broker.ensure_database(dsn, dbname)
    auth = "%s%s@" % (dsn.get("user", ""), ":" + dsn["password"] if "password" in dsn else "")
    host = "" if "host" not in dsn else dsn["host"] + (":%s" % dsn["port"] if "port" in dsn else "")
    query = "" if "host" in dsn or "port" not in dsn else "?port=%s" % dsn["port"]
    return "odoopg+postgresql+psycopg2://%s%s/%s%s" % (auth if auth != "@" else "", host,
                                                       dbname, query)


def is_embedded(url):
    return url.startswith("odoopg+")


def build_app():
    """A Celery application configured from the settings."""
    url = broker_url()
    transport_options = {"visibility_timeout": 3600}
    if url.startswith("redis"):
        transport_options.update(queue_order_strategy="priority",
                                 priority_steps=list(range(MAX_PRIORITY + 1)))
    elif is_embedded(url):
        transport_options["polling_interval"] = option("broker_polling_interval")
    app = Celery("queue_celery", set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=4,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # The job row is the result: no result backend, no result messages.
        result_backend=None,
        # A message is acknowledged once its job ended; a killed worker gives it back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=option("task_events"),
        task_queues=[Queue(queue_name(queue), routing_key=queue_name(queue),
                           queue_arguments={"x-max-priority": MAX_PRIORITY + 1})
                     for queue in QUEUES],
        task_default_queue=queue_name("default"),
        enable_utc=True,
        timezone="UTC",
    )
    return app


_app = None  # (key, app): rebuilt in a forked process or for another broker


def celery_app():
    """This process's Celery application."""
    global _app
    key = (os.getpid(), option("broker_url"), option("queue_prefix"))
    if _app is None or _app[0] != key:
        _app = (key, build_app())
    return _app[1]


def _message_priority(url, priority):
    return MAX_PRIORITY - priority if url.startswith(("amqp", "pyamqp")) else priority


def publish(dbname, dispatches):
    """Hand jobs to the broker; return the ids published and those left to the sweeper.

    A job due after the eta window is not published (it waits in the database). On Redis
    the messages go in pipelines (kombu's producer batch: one round trip per thousand,
    where each message alone costs one); other brokers take them one by one.
    Raises the broker's connection error when the broker cannot be reached.
    """
    app = celery_app()
    now = datetime.datetime.utcnow()
    window = datetime.timedelta(seconds=option("eta_window"))
    published, deferred, declared = [], [], set()
    with app.producer_or_acquire() as producer, producer.batch():
        for job in dispatches:
            if job.eta and job.eta > now + window:
                deferred.append(job.id)
                continue
            queue = queue_name(job.queue)
            if queue not in declared:  # once here, not at every message as Celery would
                producer.maybe_declare(app.amqp.queues[queue])
                declared.add(queue)
            # What ``send_task`` does, less its routing, result and parent task bookkeeping
            # that jobs do not use (a third of a message's cost).
            message = app.amqp.create_task_message(
                job.task_id, TASK_NAME, [dbname, job.uuid], {},
                eta=job.eta if job.eta and job.eta > now else None, ignore_result=True,
                # What Celery would otherwise build with its slower safe repr.
                argsrepr=repr([dbname, job.uuid]), kwargsrepr="{}")
            app.amqp.send_task_message(
                producer, TASK_NAME, message, queue=queue, routing_key=queue, declare=(),
                priority=_message_priority(app.conf.broker_url, job.priority),
                retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
            published.append(job.id)
    return published, deferred


def publish_after_commit(cr, dispatches):
    """Publish jobs once ``cr``'s transaction commits, those of them it committed; never
    if it rolls back.

    Inside a test's ``testing.trap_jobs`` on that database, nothing is published: the test
    looks at the jobs and runs them. With ``celery_run_jobs_inline``, the jobs run at once
    in ``cr``'s transaction instead.
    """
    if TRAPPED[cr.dbname]:
        return
    if option("run_jobs_inline"):
        execution.run_in_transaction(cr, [job.id for job in dispatches])
        return
    pending = getattr(cr, "_celery_dispatches", None)
    if pending is None:
        pending = cr._celery_dispatches = []

        def on_commit():
            del cr._celery_dispatches
            publish_committed(cr.dbname, pending, check=True)

        def on_rollback():
            del cr._celery_dispatches

        odoo_version.after_commit(cr, on_commit, on_rollback)
    pending.extend(dispatches)


def publish_committed(dbname, dispatches, check=False):
    """Publish jobs whose state is committed, and record what came of it.

    ``check``: publish only the jobs the database holds as they are in ``dispatches`` (the
    transaction that wrote them may have rolled some back to a savepoint).
    """
    with odoo_version.autocommit_cursor(dbname) as cr:  # each statement commits alone
        if check:
            dispatches = jobstore.committed(cr, dispatches)
        if not dispatches:
            return
        try:
            published, deferred = publish(dbname, dispatches)
        except Exception:
            _logger.warning("publishing failed: %d job(s) stay pending for the sweeper",
                            len(dispatches), exc_info=True)
            published, deferred, failed = [], [], [job.id for job in dispatches]
        else:
            failed = []
        # A worker may already have moved these jobs on: they stay as they are.
        jobstore.record_dispatch(cr, published, deferred, failed)
