"""A job's call as its user, with its saved context and company: the worker's runner makes it
in a transaction of its own (``runner.py``); ``run_in_transaction`` makes it in the
transaction that holds the job, for the test helpers (``testing.py``) and for
``celery_run_jobs_inline``."""
import functools
import logging
import os
import time
import traceback
from contextlib import contextmanager

import odoo

from .. import odoo_version
from . import encoding, jobstore
from .exceptions import RetryableJobError

_logger = logging.getLogger(__name__)

# The worker name of a job run in the transaction that holds it.
IN_TRANSACTION_WORKER = "in-transaction"


@contextmanager
def job_call(cr, job):
    """``(env, call)`` for the claimed ``job``: an environment of its user with its context
    and company on ``cr``, and its method bound to its records and arguments. Its caches
    are dropped after. Raises, with the reason, what keeps it from running (its user
    archived, its records deleted, its stored arguments unreadable)."""
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
        yield env, functools.partial(getattr(records, job.method_name), *args, **kwargs)


def encode_result(result):
    """The result as JSON, or the JSON of its repr when JSON cannot carry it."""
    try:
        return encoding.dumps(result, "result")
    except ValueError:
        return encoding.dumps(repr(result))


def run_in_transaction(cr, job_ids):
    """Run the jobs ``job_ids`` that wait for a worker now, in ``cr``'s transaction and in
    this order, then the jobs their ends release; each ends through the job store.

    Each job runs in a savepoint: one that raises is rolled back alone and ends ``failed``
    (the caller's work stays); one that raises ``RetryableJobError`` is left ``enqueued``
    for its retry (at its eta, by whoever publishes it then). No time limit applies but
    the caller's own. Jobs that were moved on meanwhile are left as they are.
    """
    todo = list(job_ids)
    while todo:
        job = jobstore.start_in_transaction(cr, todo.pop(0), IN_TRANSACTION_WORKER, os.getpid())
        if job is not None:
            todo += _run(cr, job)


def _run(cr, job):
    """Run one job started in ``cr``'s transaction; the ids of the jobs its end released."""
    started = time.monotonic()
    try:
        with cr.savepoint(), job_call(cr, job) as (env, call):
            result = call()
            odoo_version.flush(env)
    except RetryableJobError as error:
        if error.ignore_retry or job.retry_count < job.max_retries:
            jobstore.mark_retry(cr, job, traceback.format_exc(), error.seconds)
        else:
            jobstore.fail(cr, job.id, "Retries used up (%d).\n%s"
                          % (job.max_retries, traceback.format_exc()), time.monotonic() - started)
        return []
    except Exception as error:
        _logger.info("job %s failed: %s", job.uuid, error)
        jobstore.fail(cr, job.id, traceback.format_exc(), time.monotonic() - started)
        return []
    ended = jobstore.mark_done(cr, job.id, encode_result(result), time.monotonic() - started)
    return [dispatch.id for dispatch in ended.released] if ended else []
