"""How a worker runs one job: claim it, run the method as its user, record the outcome."""
import heapq
import itertools
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
from . import job_options, jobstore, worker_process
from .celeryapp import publish_committed
from .exceptions import JobStopped, JobTimeLimitExceeded, RetryableJobError
from .execution import encode_result, job_call

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
    dispatches = None
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
            interruption = Interruption(cr)
            with process.running(dbname, job.id, task_id, interruption.interrupt):
                dispatches = _execute(process, cr, control, job, task_id, interruption)
        finally:
            released = jobstore.release(control, job.id)
    except Exception:
        process.forget_cursors(dbname)  # no transaction or lock may outlive what went wrong
        raise
    dispatches = (dispatches or []) + released
    if dispatches:
        publish_committed(dbname, dispatches)
    registry.signal_changes()


def _database_exists(dbname):
    """Whether PostgreSQL has ``dbname`` (raises when PostgreSQL cannot be reached)."""
    with odoo_version.read_committed_cursor("postgres") as cr:
        cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        return bool(cr.fetchone())


def _execute(process, cr, control, job, task_id, interruption):
    """Run the job and record how it ended; return the Dispatches to publish once its lock
    is let go: the jobs its end released (dependents, the jobs its channels held), or its
    retry's (``jobstore.mark_retry``). Everything the job needs is decoded here, so that
    bad stored data fails the job at once with the real reason. A stop through
    ``interruption`` cancels it, whatever it raised since (or even if its code went on and
    returned)."""
    started = time.monotonic()
    # A job whose end counts off rows that concurrent ends update (its batch, its waiting
    # dependents) runs at READ COMMITTED: at REPEATABLE READ each such end would fail with a
    # serialization error, since the others commit after its snapshot was taken.
    odoo_version.connection(cr).set_isolation_level(
        ISOLATION_LEVEL_READ_COMMITTED if job.ends_others else ISOLATION_LEVEL_REPEATABLE_READ)
    try:
        with job_call(cr, job) as (env, call):
            with interruption.armed(job.time_limit):
                result = call()
                odoo_version.flush(env)  # a write waiting on a row lock waits within the limit
            if interruption.reason is not None:
                raise interruption.reason  # the job's code caught it and went on
            # Done is written with the job's work, and releases what waited for it: all
            # commit, or nothing does.
            ended = jobstore.mark_done(cr, job.id, encode_result(result),
                                       time.monotonic() - started, alone=not job.ends_others)
            if ended is None:
                cr.rollback()  # the job was moved on meanwhile: its work is not kept
                return None
            cr.commit()
        process.wake_bus(ended.channels)
        _logger.debug("job %s done", job.uuid)
        return ended.released
    except Exception as error:
        cr.rollback()
        if isinstance(interruption.reason, JobStopped):
            return _stopped(process, cr, job, task_id, started)
        elif isinstance(error, RetryableJobError):
            return _retry_or_fail(process, control, job, error, started)
        else:
            return _failed(process, control, job, error, started)
    finally:
        cr.cache.clear()  # the cursor serves the next job too


def _stopped(process, cr, job, task_id, started):
    """End the job cancelled, with what waits for it, in a transaction of the job cursor;
    the Dispatches of the jobs its channels held that may start now."""
    ended = jobstore.end_stopped(cr, job.id, task_id, traceback.format_exc(),
                                 time.monotonic() - started)
    cr.commit()
    _logger.info("job %s stopped on request", job.uuid)
    if not ended:
        return None
    process.wake_bus(ended.channels)
    return ended.released


def _retry_or_fail(process, control, job, error, started):
    if error.ignore_retry or job.retry_count < job.max_retries:
        return jobstore.mark_retry(control, job, traceback.format_exc(),
                                   _retry_seconds(job, error.seconds))
    _fail(process, control, job, "Retries used up (%d).\n%s"
          % (job.max_retries, traceback.format_exc()), started)
    return None


def _failed(process, control, job, error, started):
    if (isinstance(error, psycopg2.Error) and error.pgcode in RETRYABLE_PGCODES
            and job.retry_count < job.max_retries):
        return jobstore.mark_retry(control, job, traceback.format_exc(), _retry_seconds(job))
    _logger.info("job %s failed: %s", job.uuid, error)
    _fail(process, control, job, _failure_reason(error, job), started)
    return None


def _retry_seconds(job, asked=None):
    """How long the job waits for its retry: what its code asked, else its function's retry
    pattern, else (None) the backoff of ``jobstore.mark_retry``."""
    return asked if asked is not None else job_options.pattern_delay(job.retry_pattern,
                                                                     job.retry_count)


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


class Interruption:
    """How a running job is interrupted, whatever the reason (its time limit, a stop): the
    exception ``reason`` raised in its Python code (a SIGALRM, in a main thread only) and
    the statement it waits on cancelled (a row lock, a long query), so that it ends whatever
    it waits on. Once its method returned, it is no longer interrupted."""

    def __init__(self, cr):
        self.reason = None
        self._connection = odoo_version.connection(cr)
        self._thread = threading.current_thread()
        self._lock = threading.Lock()
        self._armed = self._over = False

    def interrupt(self, reason):
        """Interrupt the job with the exception ``reason`` (from any thread): at once while
        its method runs, as it starts when that is yet to come; not once it returned, nor a
        second time."""
        with self._lock:
            if self._over or self.reason is not None:
                return
            self.reason = reason
            if self._armed:
                self._signal()

    def _signal(self):
        if self._thread is threading.main_thread():
            signal.pthread_kill(self._thread.ident, signal.SIGALRM)
        # A cancel request reaches PostgreSQL while the thread waits in libpq, where no
        # Python signal handler can run; one that arrives while no statement runs is ignored.
        self._connection.cancel()

    def _raise(self, _signum, _frame):
        if self._armed:
            raise self.reason

    @contextmanager
    def armed(self, seconds):
        """Run the block interruptible, and interrupted past ``seconds`` with
        JobTimeLimitExceeded."""
        in_main_thread = self._thread is threading.main_thread()
        if in_main_thread:
            previous = signal.signal(signal.SIGALRM, self._raise)
        limit = None
        try:
            with self._lock:
                if self.reason is not None:
                    raise self.reason  # interrupted before it started
                self._armed = True
            limit = _TIME_LIMITS.call_at(time.monotonic() + seconds, self.interrupt, (
                JobTimeLimitExceeded("The job ran past its time limit of %s s." % seconds)))
            yield
        finally:
            try:
                with self._lock:
                    # No signal is sent from here on; the runner reads ``reason`` for one
                    # whose handler runs too late to raise.
                    self._armed, self._over = False, True
            finally:  # even if that signal's handler raised first
                if limit is not None:
                    _TIME_LIMITS.cancel(limit)
                if in_main_thread:
                    signal.signal(signal.SIGALRM, previous)


class _Calls:
    """Calls due at given times, made by one thread of this process, started at its first
    call (a thread per running job would cost each job a thread start)."""

    def __init__(self):
        self._forked()
        os.register_at_fork(after_in_child=self._forked)  # the thread stays in the parent

    def _forked(self):
        self._condition = threading.Condition()
        self._due = []  # heap of [time.monotonic(), sequence, function or None, argument]
        self._sequence = itertools.count()
        self._thread = None

    def call_at(self, when, function, argument):
        """Call ``function(argument)`` at ``when`` (time.monotonic()) unless cancelled; the
        handle for ``cancel``."""
        call = [when, next(self._sequence), function, argument]
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="queue_celery time limits")
                self._thread.start()
            heapq.heappush(self._due, call)
            self._condition.notify()
        return call

    def cancel(self, call):
        with self._condition:
            call[2] = None  # dropped when it comes first in the heap

    def _run(self):
        while True:
            with self._condition:
                while not self._due or (self._due[0][2] is not None
                                        and self._due[0][0] > time.monotonic()):
                    self._condition.wait(self._due[0][0] - time.monotonic() if self._due
                                         else None)
                _when, _sequence, function, argument = heapq.heappop(self._due)
            if function is not None:
                function(argument)


_TIME_LIMITS = _Calls()
