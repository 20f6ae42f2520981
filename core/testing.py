"""Test helpers for code that enqueues jobs: in an Odoo test, trap the jobs it enqueues, check
what was enqueued, and run them in-process, without a broker or a worker.

    from odoo.addons.queue_celery.core.testing import trap_jobs

    def test_confirming_sends_the_mail_in_a_job(self):
        with trap_jobs(self.env) as trap:
            self.order.action_confirm()
        trap.assert_enqueued(self.order, "_send_confirmation", args=["en_US"], queue="high")
        trap.perform()
        self.assertTrue(self.order.confirmation_sent)
"""
from contextlib import contextmanager

from .. import odoo_version
from . import encoding, execution, job_options, jobstore
from .celeryapp import TRAPPED

# Options of ``assert_enqueued`` named otherwise than the job's field.
OPTION_FIELDS = {"description": "name", "user": "user_id", "company": "company_id"}


@contextmanager
def trap_jobs(env):
    """Trap the jobs enqueued inside the block on ``env``'s database: they are written as
    usual in the test's transaction, but never published (no broker, no after-commit hook).
    Yields a :class:`JobsTrap`."""
    trap = JobsTrap(env)
    TRAPPED[env.cr.dbname] += 1
    try:
        yield trap
    finally:
        TRAPPED[env.cr.dbname] -= 1
        trap.close()


class JobsTrap:
    """The jobs enqueued inside a ``trap_jobs`` block: look at them, assert on them, run them."""

    def __init__(self, env):
        self.env = env
        self._after = self._last_job_id()
        self._until = None  # the last job id of the block, once it ended

    def _last_job_id(self):
        return self.env["celery.job"].sudo().search([], limit=1, order="id desc").id or 0

    def close(self):
        self._until = self._last_job_id()

    @property
    def jobs(self):
        """The ``celery.job`` records enqueued in the block (by any user), in enqueue order;
        read with superuser rights."""
        domain = [("id", ">", self._after)]
        if self._until is not None:
            domain.append(("id", "<=", self._until))
        return self.env["celery.job"].sudo().search(domain, order="id")

    def clear(self):
        """Forget the jobs trapped so far: ``jobs`` lists those enqueued from now on."""
        self._after = self._last_job_id()

    def assert_count(self, count):
        """Fail unless exactly ``count`` jobs were enqueued in the block."""
        jobs = self.jobs
        if len(jobs) != count:
            raise AssertionError("%d job(s) enqueued, not %d:\n%s"
                                 % (len(jobs), count, self._describe(jobs)))

    def assert_enqueued(self, target, method_name, args=None, kwargs=None, **options):
        """Fail unless a job of the block calls ``method_name`` on ``target`` (a recordset:
        those very records; or a model name), with these ``args`` and ``kwargs`` when given,
        and these ``options``: any of ``enqueue``'s (``queue``, ``priority``, ``eta``,
        ``max_retries``, ``description``, ``identity_key``, ``time_limit``), or ``user``,
        ``company`` (records or ids), ``state``. Returns the matching jobs.

        The failure message lists every job the block enqueued.
        """
        jobs = self.jobs
        found = jobs.filtered(lambda job: self._matches(job, target, method_name, args, kwargs,
                                                        options))
        if not found:
            raise AssertionError("No job enqueued calls %s%s:\n%s" % (
                _call(target if isinstance(target, str) else _records(target), method_name,
                      args, kwargs),
                "".join(" %s=%r" % item for item in sorted(options.items())),
                self._describe(jobs)))
        return found

    def perform(self):
        """Run the jobs of the block that wait for a worker now (whatever their eta), in the
        test's transaction and in enqueue order, each as its user with its context and
        company, then those their ends release; each ends ``done``, ``failed`` or
        (``RetryableJobError``) ``enqueued`` for a retry, as a worker would record it. Jobs
        they enqueue inside the block are trapped too: ``perform`` again runs them. Returns
        the jobs of the block, as they ended."""
        waiting = self.jobs.filtered(lambda job: job.state in jobstore.QUEUED)
        execution.run_in_transaction(self.env.cr, waiting.ids)
        odoo_version.invalidate(waiting)  # moved by the job store, under the ORM's cache
        return self.jobs

    def _matches(self, job, target, method_name, args, kwargs, options):
        if isinstance(target, str):
            if job.model_name != target:
                return False
        elif job.model_name != target._name or encoding.loads(job.record_ids) != target.ids:
            return False
        if job.method_name != method_name:
            return False
        if args is not None and encoding.loads(job.args, self.env) != list(args):
            return False
        if kwargs is not None and encoding.loads(job.kwargs, self.env) != kwargs:
            return False
        for option, expected in options.items():
            value = job[OPTION_FIELDS.get(option, option)]
            if option == "eta":  # to the second, however either version reads or takes it
                value, expected = (str(job_options.eta_from(eta or None, None))[:19]
                                   for eta in (value, expected))
            elif hasattr(value, "_name"):
                value = value.id
                expected = getattr(expected, "id", expected)
            if value != expected:
                return False
        return True

    def _describe(self, jobs):
        return "\n".join(
            "  %d. %s queue=%r priority=%r user=%r state=%r%s" % (
                number, _call("%s%s" % (job.model_name, tuple(encoding.loads(job.record_ids))),
                              job.method_name, encoding.loads(job.args, self.env),
                              encoding.loads(job.kwargs, self.env)),
                job.queue, job.priority, job.user_id.login, job.state,
                " eta=%s" % job.eta if job.eta else "")
            for number, job in enumerate(jobs, 1)) or "  (none)"


def _records(records):
    return "%s%s" % (records._name, tuple(records.ids))


def _call(target, method_name, args, kwargs):
    arguments = [repr(arg) for arg in args or ()]
    arguments += ["%s=%r" % item for item in sorted((kwargs or {}).items())]
    return "%s.%s(%s)" % (target, method_name, ", ".join(arguments))
