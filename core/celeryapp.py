"""The Celery application, built in one place from odoo.conf, and publishing jobs.

odoo.conf options (section ``[options]``):

``celery_broker_url``
    A Celery broker URL (``redis://...``, ``amqp://...``). Empty: the embedded
    broker, kombu over Odoo's own PostgreSQL, in database ``celery_broker_db``.
``celery_broker_db``
    The embedded broker's database (default ``queue_celery_broker``).
``celery_broker_polling_interval``
    Seconds between polls of an empty queue on the embedded broker (default 0.02;
    kombu also waits this long once a worker's prefetch window is full).
``celery_queue_prefix``
    Prefix of the broker's queue names, for Odoo instances sharing a broker
    (default ``odoo.``: queues ``odoo.high``, ``odoo.default``, ``odoo.low``).
``celery_eta_window``
    A job due within this many seconds is handed to the broker with its eta; a
    later one waits in the database for the sweeper (default 300), so a long eta
    never depends on the broker's visibility timeout.
``celery_retry_backoff``
    Base of the exponential backoff between retries, in seconds (default 5).
``celery_task_events``
    Send Celery task events, for Flower and ``celery events`` (default False).
``celery_max_arguments_size``
    Bytes the JSON of a job's arguments may take (default 5 MiB).
``celery_job_time_limit``
    Seconds a job may run before it fails, unless the job says otherwise (default 3600).
"""
import collections
import datetime
import logging
import os
import time

import psycopg2
from celery import Celery
from celery.exceptions import Reject
from kombu import Queue

from odoo.tools import config

_logger = logging.getLogger(__name__)

QUEUES = ("high", "default", "low")
TASK_NAME = "queue_celery.run_job"
# Job priorities run from 0 (first) to 9 (last), as in Redis; RabbitMQ counts the other way.
MAX_PRIORITY = 9
DEFAULT_PRIORITY = 5

# What publishing needs of a job; eta is a naive UTC datetime or None.
Dispatch = collections.namedtuple("Dispatch", "id uuid queue priority eta task_id")


def option(name, default):
    """The odoo.conf option ``celery_<name>``, or ``default`` when it is not set."""
    value = config.get("celery_" + name)
    if value in (None, "", False):
        return default
    if isinstance(default, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    return type(default)(value)


def queue_name(queue):
    """The broker's name of the job queue ``queue`` (one of QUEUES)."""
    return option("queue_prefix", "odoo.") + queue


def broker_url():
    """The configured broker URL, or the embedded broker's on Odoo's PostgreSQL."""
    url = option("broker_url", "")
    if url:
        return url
    from . import broker

    dsn = {key: value for key, value in (
        ("host", config["db_host"]), ("port", config["db_port"]),
        ("user", config["db_user"]), ("password", config["db_password"])) if value}
    dbname = option("broker_db", "queue_celery_broker")
    broker.ensure_database(dsn, dbname)
    auth = "%s%s@" % (dsn.get("user", ""), ":" + dsn["password"] if "password" in dsn else "")
    host = "" if "host" not in dsn else dsn["host"] + (":%s" % dsn["port"] if "port" in dsn else "")
    query = "" if "host" in dsn or "port" not in dsn else "?port=%s" % dsn["port"]
    return "odoopg+postgresql+psycopg2://%s%s/%s%s" % (auth if auth != "@" else "", host,
                                                       dbname, query)


def is_embedded(url):
    return url.startswith("odoopg+")


def build_app():
    """The Celery application of this process, configured from odoo.conf."""
    from . import runner

    url = broker_url()
    transport_options = {"visibility_timeout": 3600}
    if url.startswith("redis"):
        transport_options.update(queue_order_strategy="priority",
                                 priority_steps=list(range(MAX_PRIORITY + 1)))
    elif is_embedded(url):
        from . import broker

        transport_options["polling_interval"] = option("broker_polling_interval",
                                                       broker.Transport.polling_interval)
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
        worker_send_task_events=option("task_events", False),
        task_queues=[Queue(queue_name(queue), routing_key=queue_name(queue),
                           queue_arguments={"x-max-priority": MAX_PRIORITY + 1})
                     for queue in QUEUES],
        task_default_queue=queue_name("default"),
        enable_utc=True,
        timezone="UTC",
    )

    @app.task(name=TASK_NAME, bind=True)
    def run_job(task, dbname, job_uuid):
        """Run the job ``job_uuid`` of database ``dbname`` (see runner.run_job)."""
        try:
            runner.run_job(dbname, job_uuid, task.request.id, task.request.hostname)
        except psycopg2.OperationalError as error:
            _logger.warning("job %s: PostgreSQL unreachable (%s), message requeued",
                            job_uuid, str(error).strip())
            time.sleep(1)  # do not spin while the database restarts
            raise Reject(str(error), requeue=True)

    return app


_app = None
_app_key = None


def celery_app():
    """This process's Celery application, rebuilt in a forked process or a new broker."""
    global _app, _app_key
    key = (os.getpid(), option("broker_url", ""), option("queue_prefix", "odoo."))
    if _app is None or _app_key != key:
        _app, _app_key = build_app(), key
    return _app


def _message_priority(url, priority):
    return MAX_PRIORITY - priority if url.startswith(("amqp", "pyamqp")) else priority


def publish(dbname, dispatches):
    """Hand jobs to the broker; return the ids published and those left to the sweeper.

    A job due after the eta window is not published (it waits in the database).
    Raises the broker's connection error when the broker cannot be reached.
    """
    app = celery_app()
    now = datetime.datetime.utcnow()
    window = datetime.timedelta(seconds=option("eta_window", 300))
    published, deferred = [], []
    with app.producer_or_acquire() as producer:
        for job in dispatches:
            if job.eta and job.eta > now + window:
                deferred.append(job.id)
                continue
            app.send_task(
                TASK_NAME, args=[dbname, job.uuid], task_id=job.task_id, producer=producer,
                queue=queue_name(job.queue), routing_key=queue_name(job.queue),
                priority=_message_priority(app.conf.broker_url, job.priority),
                eta=job.eta if job.eta and job.eta > now else None,
                retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
            published.append(job.id)
    return published, deferred


def publish_after_commit(cr, dispatches):
    """Publish jobs once ``cr``'s transaction commits; never if it rolls back."""
    pending = getattr(cr, "_celery_dispatches", None)
    if pending is None:
        pending = cr._celery_dispatches = []

        def on_commit():
            del cr._celery_dispatches
            publish_committed(cr.dbname, pending)

        def on_rollback():
            del cr._celery_dispatches

        cr.after("commit", on_commit)
        cr.after("rollback", on_rollback)
    pending.extend(dispatches)


def publish_committed(dbname, dispatches):
    """Publish jobs whose state is committed, and record what came of it."""
    import odoo

    from ..models.celery_job import record_dispatch

    try:
        published, deferred = publish(dbname, dispatches)
    except Exception:
        _logger.warning("publishing failed: %d job(s) stay pending for the sweeper",
                        len(dispatches), exc_info=True)
        published, deferred = [], []
        failed = [job.id for job in dispatches]
    else:
        failed = []
    # READ COMMITTED: a worker may already have moved these jobs on; they are left as they are.
    with odoo.sql_db.db_connect(dbname).cursor(serialized=False) as cr:
        record_dispatch(cr, published, deferred, failed)
