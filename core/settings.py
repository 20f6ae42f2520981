"""Every queue_celery setting in one table: its name, default and meaning.

Options of odoo.conf (``[options]``, prefixed ``celery_``) are read with :func:`option`;
system parameters (Settings > Technical > Parameters, prefixed ``queue_celery.``), which
change without a restart, with :func:`parameter`. The README's configuration tables are
checked against this one by a test.
"""
import collections

from odoo.tools import config

Setting = collections.namedtuple("Setting", "name default meaning")

OPTIONS = {setting.name: setting for setting in (
    Setting("broker_url", "", "a Celery broker URL (`redis://...`, `amqp://...`); empty: the "
            "embedded broker, Celery over Odoo's own PostgreSQL"),
    Setting("broker_db", "queue_celery_broker", "the embedded broker's PostgreSQL database "
            "(created when missing)"),
    Setting("broker_polling_interval", 1.0, "seconds between two looks at an empty queue "
            "without a notification, embedded broker (a PostgreSQL NOTIFY wakes its consumers "
            "at once)"),
    Setting("queue_prefix", "odoo.", "prefix of the broker's queue names (`odoo.high`, ...), "
            "for Odoo instances sharing a broker"),
    Setting("workers_high", 1, "Celery worker processes the server runs for the `high` queue "
            "(forked by the prefork server, started beside the threaded one)"),
    Setting("workers_default", 2, "the same, `default` queue"),
    Setting("workers_low", 1, "the same, `low` queue"),
    Setting("job_time_limit", 3600, "seconds a job may run before it fails (per job: "
            "`time_limit=`)"),
    Setting("retry_backoff", 5.0, "base of the exponential retry backoff, in seconds"),
    Setting("eta_window", 300, "a job due later than this many seconds waits in the database, "
            "not in the broker"),
    Setting("max_arguments_size", 5 * 1024 * 1024, "bytes the JSON of a job's arguments and "
            "context may take"),
    Setting("task_events", False, "send Celery task events (for Flower)"),
    Setting("run_jobs_inline", False, "run every job at once inside the transaction that "
            "enqueues it, without broker or worker (for test databases; see Testing code that "
            "enqueues jobs)"),
    Setting("metrics_token", "", "the bearer token that opens `GET /queue_celery/metrics` "
            "(`Authorization: Bearer ...`, for Prometheus); empty: job managers' sessions only"),
)}

PARAMETERS = {setting.name: setting for setting in (
    Setting("done_retention_days", 7, "days the cleanup cron keeps done and cancelled jobs"),
    Setting("failed_retention_days", 30, "days the cleanup cron keeps failed jobs"),
    Setting("sweep_grace_seconds", 30, "how long a job may stay `pending`, or `started` "
            "without its worker, before the sweeper steps in"),
    Setting("republish_after_seconds", 3600, "a job `enqueued` this long without starting is "
            "published again (its broker lost the message)"),
)}


def _typed(setting, value):
    if value in (None, "", False):
        return setting.default
    if isinstance(setting.default, bool):
        return str(value).lower() in ("1", "true", "yes", "on")
    return type(setting.default)(value)


def option(name):
    """The odoo.conf option ``celery_<name>``, or its default."""
    return _typed(OPTIONS[name], config.get("celery_" + name))


def parameter(cr, name):
    """The system parameter ``queue_celery.<name>``, or its default (read on ``cr``)."""
    cr.execute("SELECT value FROM ir_config_parameter WHERE key = %s", ("queue_celery." + name,))
    row = cr.fetchone()
    return _typed(PARAMETERS[name], row and row[0])
