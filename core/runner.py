"""How a worker runs one job: claim it, run the method as its user, record the outcome."""
import logging
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager

import psycopg2
from psycopg2 import errorcodes
from psycopg2.extensions import ISOLATION_LEVEL_READ_COMMITTED, ISOLATION_LEVEL_REPEATABLE_READ

import odoo

from .. import odoo_version
from . import encoding, job_options, jobstore, worker_process
from .celeryapp import publish_committed
from .exceptions import JobTimeLimitExceeded, RetryableJobError

_logger = logging.getLogger(__name__)

# Database errors that a later try may not meet again.
RETRYABLE_PGCODES = (errorcodes.SERIALIZATION_FAILURE, errorcodes.DEADLOCK_DETECTED,
                     errorcodes.LOCK_NOT_AVAILABLE)
# A job waiting for its message but still locked is claimed again this often, so long apart:
# the worker that ran it before lets go of the lock a statement after ending it.
BUSY_RETRIES, BUSY_WAIT = 100, 0.05


def run_job(dbname, job_uuid, task_id, worker_name):
    """Run the job ``job_uuid`` of ``dbname`` for the message ``task_id``, in the Celery
    worker ``worker_name`` (its node name, as ``celery inspect`` shows it).

    A message for an unknown database or job, a finished job, a job running
    elsewhere or a job published again since is dropped with a log line.
    """
    process = worker_process.current()
    try:
        registry = process.registry(dbname)
    except psycopg2.OperationalError:
        if _database_exists(dbname):
            raise  # PostgreSQL is unreachable: the message goes back to the queue
        _logger.warning("job %s: database %r does not exist, message dropped", job_uuid, dbname)
        return
    except Exception:
        _logger.warning("job %s: database %r cannot be opened, message dropped",
                        job_uuid, dbname, exc_info=True)
        return
    control, cr = process.cursors(dbname, registry)
    retry = None
    try:
        job = jobstore.claim(control, job_uuid, task_id, worker_name, os.getpid())
        for _attempt in range(BUSY_RETRIES):
            if not isinstance(job, jobstore.Busy):
                break
            time.sleep(BUSY_WAIT)
            job = jobstore.claim(control, job_uuid, task_id, worker_name, os.getpid())
        if isinstance(job, jobstore.Busy):
            job = jobstore.Dropped("its lock is still held by another connection; left to "
                                   "the sweeper", None, ())
        if isinstance(job, jobstore.Dropped):
            _logger.info("job %s: message dropped, %s", job_uuid, job.reason)
            process.wake_bus(job.notices)
            if job.republish:
                publish_committed(dbname, [job.republish])
            return
        try:
            if job.early_by:
                time.sleep(job.early_by)  # Celery's timer handed the eta task over early
            process.running_job = (dbname, job.id)
            retry = _execute(process, cr, control, job)
        finally:
            process.running_job = None
            jobstore.release(control, job.id)
    except Exception:
        process.forget_cursors(dbname)  # no transaction or lock may outlive what went wrong
        raise
    if retry:
        publish_committed(dbname, retry)
    registry.signal_changes()


def _database_exists(dbname):
    """Whether PostgreSQL has ``dbname`` (raises when PostgreSQL cannot be reached)."""
    with odoo_version.read_committed_cursor("postgres") as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        return bool(cr.fetchone())


def _execute(process, cr, control, job):
    """Run the job and record how it ended; return its retry's Dispatches when it is to run
    again (``jobstore.mark_retry``). Everything the job needs is decoded here, so that bad stored data fails the job
    at once with the real reason."""
    started = time.monotonic()
    # A job whose end counts off rows that concurrent ends update (its batch, its waiting
    # dependents) runs at READ COMMITTED: at REPEATABLE READ each such end would fail with a
    # serialization error, since the others commit after its snapshot was taken.
    odoo_version.connection(cr).set_isolation_level(
        ISOLATION_LEVEL_READ_COMMITTED if job.ends_others else ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        if not job.user_active:
            raise odoo.exceptions.UserError(
                "The user (id %d) who enqueued this job is archived: it does not run as them."
                % job.user_id)
        context = dict(encoding.loads(job.context), celery_job_uuid=job.uuid,
                       **odoo_version.company_context(job.company_id))
        with odoo_version.environment(cr, job.user_id, context) as env:
            records = env[job.model_name].browse(encoding.loads(job.record_ids))
            missing = records - records.exists()
            if missing:
                raise odoo.exceptions.MissingError(
                    "The job's records %s(%s) were deleted before it ran."
                    % (job.model_name, ", ".join(map(str, missing.ids))))
            args = encoding.loads(job.args, env)
            kwargs = encoding.loads(job.kwargs, env)
            with time_limit(cr, job.time_limit):
                result = getattr(records, job.method_name)(*args, **kwargs)
                odoo_version.flush(env)  # a write waiting on a row lock waits within the limit
            # Done is written with the job's work, and releases what waited for it: all
            # commit, or nothing does.
            ended = jobstore.mark_done(cr, job.id, _encode_result(result),
                                       time.monotonic() - started)
            if ended is None:
                cr.rollback()  # the job was moved on meanwhile: its work is not kept
                return None
            cr.commit()
        process.wake_bus(ended.channels)
        released = ended.released
        if not job.ends_others:
            # Jobs that came to wait for it while it ran, unseen by its snapshot.
            released += jobstore.release_dependents(control, job.id)
        if released:
            publish_committed(cr.dbname, released)
        _logger.debug("job %s done", job.uuid)
    except RetryableJobError as error:
        cr.rollback()
        if error.ignore_retry or job.retry_count < job.max_retries:
            return jobstore.mark_retry(control, job, traceback.format_exc(), error.seconds
                                       if error.seconds is not None
                                       else job_options.pattern_delay(job.retry_pattern,
                                                                      job.retry_count))
        _fail(process, control, job, "Retries used up (%d).\n%s"
              % (job.max_retries, traceback.format_exc()), started)
    except Exception as error:
        cr.rollback()
        if (isinstance(error, psycopg2.Error) and error.pgcode in RETRYABLE_PGCODES
                and job.retry_count < job.max_retries):
            return jobstore.mark_retry(control, job, traceback.format_exc(),
                                       job_options.pattern_delay(job.retry_pattern,
                                                                 job.retry_count))
        _logger.info("job %s failed: %s", job.uuid, error)
        _fail(process, control, job, _failure_reason(error, job), started)
    finally:
        cr.cache.clear()  # the cursor serves the next job too
    return None


def _fail(process, control, job, reason, started):
    process.wake_bus(jobstore.fail(control, job.id, reason, time.monotonic() - started))


def _failure_reason(error, job):
    reason = traceback.format_exc()
    if isinstance(error, MemoryError):
        return ("The job ran out of memory (the worker's limit_memory_hard is %d MB).\n%s"
                % (odoo.tools.config["limit_memory_hard"] // 2 ** 20, reason))
    if isinstance(error, psycopg2.errors.QueryCanceled):
        return ("The job ran past its time limit of %s s while waiting on the database.\n%s"
                % (job.time_limit, reason))
    return reason


@contextmanager
def time_limit(cr, seconds):
    """Bound the job to ``seconds``: JobTimeLimitExceeded in Python code (a SIGALRM, in a
    main thread only), and the statement it waits on cancelled (a row lock, a long query),
    so that a job ends within its limit whatever it waits on."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        def expire(_signum, _frame):
            raise JobTimeLimitExceeded("The job ran past its time limit of %s s." % seconds)

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    # A cancel request reaches PostgreSQL while this thread waits in libpq, where no Python
    # signal handler can run; one that arrives while no statement runs is ignored.
    canceller = threading.Timer(seconds, odoo_version.connection(cr).cancel)
    canceller.daemon = True
    canceller.start()
    try:
        yield
    finally:
        canceller.cancel()
        if in_main_thread:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _encode_result(result):
    """The result as JSON, or the JSON of its repr when JSON cannot carry it."""
    try:
        return encoding.dumps(result, "result")
    except ValueError:
        return encoding.dumps(repr(result))
