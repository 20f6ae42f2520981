"""How a worker runs one job: claim it, run the method as its user, record the outcome."""
import logging
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager, suppress

import psycopg2
from psycopg2 import errorcodes

import odoo
from odoo import api

from . import encoding
from .celeryapp import publish_committed
from .exceptions import JobTimeLimitExceeded, RetryableJobError
from ..models import celery_job

_logger = logging.getLogger(__name__)

# Database errors that a later try may not meet again.
RETRYABLE_PGCODES = (errorcodes.SERIALIZATION_FAILURE, errorcodes.DEADLOCK_DETECTED,
                     errorcodes.LOCK_NOT_AVAILABLE)


def run_job(dbname, job_uuid, task_id, worker_name):
    """Run the job ``job_uuid`` of ``dbname`` for the message ``task_id``, in the Celery
    worker ``worker_name`` (its node name, as ``celery inspect`` shows it).

    A message for an unknown database or job, a finished job, a job running
    elsewhere or a job published again since is dropped with a log line.
    """
    try:
        registry = _registry(dbname)
    except psycopg2.OperationalError as error:
        if "does not exist" not in str(error):
            raise  # PostgreSQL is unreachable: the message goes back to the queue
        _logger.warning("job %s: database %r does not exist, message dropped", job_uuid, dbname)
        return
    except Exception:
        _logger.warning("job %s: database %r cannot be opened, message dropped",
                        job_uuid, dbname, exc_info=True)
        return
    control, cr = _cursors(dbname, registry)
    try:
        with api.Environment.manage():
            job = celery_job.claim(control, job_uuid, task_id, worker_name, os.getpid())
            if job is None:
                return
            try:
                retry = _execute(cr, control, job)
            finally:
                celery_job.release(control, job.id)
    except Exception:
        _forget_cursors(dbname)  # no transaction or lock may outlive what went wrong
        raise
    if retry:
        publish_committed(dbname, [retry])
    registry.signal_changes()


_kept_cursors = {}  # (pid, dbname): the cursors of this worker process


def _cursors(dbname, registry):
    """This process's two cursors on ``dbname``, kept from job to job (a new cursor costs a
    round trip that resets its connection).

    The control cursor moves the job's state and its connection holds the job's lock while
    it runs. It is in autocommit mode, each statement committing alone, with asynchronous
    commits: a 'started' that a crash of PostgreSQL loses leaves the job waiting, to run
    again, and the job's own durable commit takes the earlier ones to disk with it (the WAL
    is written in order). The job's work runs on the other, an ordinary Odoo cursor.
    """
    key = (os.getpid(), dbname)
    if key not in _kept_cursors:
        control = odoo.sql_db.db_connect(dbname).cursor(serialized=False)
        control.autocommit(True)
        control.execute("SET synchronous_commit = off")
        _kept_cursors[key] = (control, registry.cursor())
    return _kept_cursors[key]


def _forget_cursors(dbname):
    """Close this process's cursors on ``dbname``, with any lock their connections hold."""
    for cr in _kept_cursors.pop((os.getpid(), dbname), ()):
        with suppress(psycopg2.Error):
            cr.rollback()
            cr.execute("SELECT pg_advisory_unlock_all()")
            cr.close()


_signaling_checked = {}  # dbname: time.monotonic() of the last check


def _registry(dbname):
    """The registry of ``dbname``, checked for changes (module updates, caches) once a second."""
    registry = odoo.registry(dbname)
    if time.monotonic() - _signaling_checked.get(dbname, 0) >= 1:
        registry = registry.check_signaling()
        _signaling_checked[dbname] = time.monotonic()
    return registry


def _execute(cr, control, job):
    """Run the job and record how it ended; return its retry's Dispatch when it is to run again."""
    started = time.monotonic()
    context = dict(encoding.loads(job.context), celery_job_uuid=job.uuid)
    # The company the job was enqueued in, whatever the user's current one is now.
    context.setdefault("force_company", job.company_id)
    env = api.Environment(cr, job.user_id, context)
    try:
        records = env[job.model_name].browse(encoding.loads(job.record_ids))
        missing = records - records.exists()
        if missing:
            raise odoo.exceptions.MissingError(
                "The job's records %s(%s) were deleted before it ran."
                % (job.model_name, ", ".join(map(str, missing.ids))))
        args = encoding.loads(job.args, env)
        kwargs = encoding.loads(job.kwargs, env)
        with time_limit(job.time_limit):
            result = getattr(records, job.method_name)(*args, **kwargs)
        # Done is written with the job's work: both commit, or neither.
        celery_job.mark_done(cr, job, _encode_result(result), time.monotonic() - started)
        cr.commit()
        _logger.debug("job %s done", job.uuid)
    except RetryableJobError as error:
        cr.rollback()
        if error.ignore_retry or job.retry_count < job.max_retries:
            return celery_job.mark_retry(control, job, traceback.format_exc(), error.seconds)
        else:
            celery_job.mark_failed(control, job, "Retries used up (%d).\n%s"
                                   % (job.max_retries, traceback.format_exc()),
                                   time.monotonic() - started)
    except Exception as error:
        cr.rollback()
        if (isinstance(error, psycopg2.Error) and error.pgcode in RETRYABLE_PGCODES
                and job.retry_count < job.max_retries):
            return celery_job.mark_retry(control, job, traceback.format_exc())
        else:
            _logger.info("job %s failed: %s", job.uuid, error)
            reason = traceback.format_exc()
            if isinstance(error, MemoryError):
                reason = ("The job ran out of memory (the worker's limit_memory_hard is %d MB)."
                          "\n%s" % (odoo.tools.config["limit_memory_hard"] // 2 ** 20, reason))
            celery_job.mark_failed(control, job, reason, time.monotonic() - started)
    finally:
        env.clear()
        cr.cache.clear()  # the cursor serves the next job too
    return None


@contextmanager
def time_limit(seconds):
    """Raise JobTimeLimitExceeded in the job after ``seconds`` (in a main thread only,
    where SIGALRM lands; a worker's watchdog covers a job stuck outside Python)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum, _frame):
        raise JobTimeLimitExceeded("The job ran past its time limit of %s s." % seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _encode_result(result):
    """The result as JSON, or the JSON of its repr when JSON cannot carry it."""
    try:
        return encoding.dumps(result, "result")
    except ValueError:
        return encoding.dumps(repr(result))
