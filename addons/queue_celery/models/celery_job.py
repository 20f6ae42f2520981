"""What a job does on Odoo 11.0: enqueue, the buttons, progress and the crons, all through the
job store (``core/jobstore.py``); its fields are in ``core/models/celery_job.py``."""
import logging

from odoo import SUPERUSER_ID, _, api, models
from odoo.exceptions import AccessError, UserError

from .. import odoo_version
from ..core import encoding, job_options, jobstore, worker_process
from ..core.celeryapp import publish_after_commit
from ..core.models.celery_job import MANAGER_GROUP, USER_GROUP

_logger = logging.getLogger(__name__)


class CeleryJob(models.Model):
    _inherit = "celery.job"

    @api.model_cr
    def init(self):
        jobstore.create_schema(self.env.cr)

    # ------------------------------------------------------------------ enqueue

    @api.model
    @api.returns("self", lambda job: job.id)
    def enqueue(self, target, method_name, args=(), kwargs=None, queue=None, priority=None,
                eta=None, countdown=None, max_retries=None, description=None, identity_key=None,
                record_ids=None, time_limit=None, depends_on=None, channel=None):
        """Run ``target.method_name(*args, **kwargs)`` in the background; return the job.

        :param target: a recordset, or a model name (then give ``record_ids``, as RPC does)
        :param method_name: a public method of the target's model (Odoo's rule for what may
            be called over RPC)
        :param queue: ``default``, ``high`` or ``low`` (default: the channel's queue, or
            ``default``)
        :param priority: 0 (first) to 9 (last) within the queue, where the broker supports it
        :param eta: do not start before this datetime (naive: UTC; or an ISO 8601 string);
            ``countdown``: before so many seconds
        :param max_retries: how often a ``RetryableJobError`` may retry the job (default 5)
        :param description: the job's name in the Jobs screen
        :param identity_key: while a job of the same user with this key is active, return it
            instead of enqueuing another
        :param time_limit: seconds the job may run before it fails (default: odoo.conf's
            ``celery_job_time_limit``)
        :param depends_on: ids of jobs the caller may read: the job waits (``waiting``)
            until every one of them is done
        :param channel: the name of a channel (``root.imports``): the job starts within its
            limits and its parents' (capacity, sequential, rate limit, paused)
        """
        if isinstance(method_name, str):
            models.check_method_name(method_name)
        if isinstance(target, models.BaseModel):
            if record_ids is not None:
                raise UserError(_("Give record_ids only with a model name as target."))
            target, record_ids = target._name, target.ids
        return self._enqueue(target, record_ids, method_name, args, kwargs, queue=queue,
                             priority=priority, eta=eta, countdown=countdown,
                             max_retries=max_retries, description=description,
                             identity_key=identity_key, time_limit=time_limit,
                             depends_on=depends_on, channel=channel)

    @api.model
    def _enqueue(self, model_name, record_ids, method_name, args=(), kwargs=None, queue=None,
                 priority=None, eta=None, countdown=None, max_retries=None, description=None,
                 identity_key=None, time_limit=None, depends_on=None, batch_id=None,
                 channel=None):
        """``enqueue`` without the public-method rule: private methods are allowed here."""
        values, depends_on = self._job_values(
            model_name, record_ids, method_name, args, kwargs, queue=queue, priority=priority,
            eta=eta, countdown=countdown, max_retries=max_retries, description=description,
            identity_key=identity_key, time_limit=time_limit, depends_on=depends_on,
            channel=channel)
        try:
            job_id, dispatch = jobstore.insert(self.env.cr, values, values["user_id"],
                                               depends_on, batch_id)
        except jobstore.DependencyError as error:
            raise UserError(str(error)) from None
        if dispatch:
            publish_after_commit(self.env.cr, [dispatch])
        return self.browse(job_id)

    @api.model
    def _job_values(self, model_name, record_ids, method_name, args=(), kwargs=None,
                    queue=None, priority=None, eta=None, countdown=None, max_retries=None,
                    description=None, identity_key=None, time_limit=None, depends_on=None,
                    channel=None):
        """The row ``_enqueue`` writes for this call and the jobs it depends on, once every
        rule of ``_enqueue`` is checked: ``(values, depends_on)``. Shared with
        ``_enqueue_many``, so both refuse the same calls."""
        if not (self.env.uid == SUPERUSER_ID or self.env.user.has_group(USER_GROUP)):
            raise AccessError(_("Only internal users may enqueue jobs."))
        try:
            record_ids, args, kwargs = job_options.check_call(model_name, method_name,
                                                              record_ids, args, kwargs)
        except job_options.JobOptionError as error:
            raise UserError(str(error)) from None
        if model_name not in self.env:
            raise UserError(_("Unknown model %r.") % (model_name,))
        method = getattr(type(self.env[model_name]), method_name, None)
        if not callable(method):
            raise UserError(_("Model %(model)s has no method %(method)r.")
                            % {"model": model_name, "method": method_name})
        try:
            # The method's job function (created by its first job) fills what is not given;
            # it and the channel are read in SQL.
            odoo_version.flush(self.env)
            function = self.env["celery.job.function"]._enqueue_defaults(model_name, method_name)
            defaults = job_options.with_function_defaults(function, {
                "channel": channel, "priority": priority, "max_retries": max_retries,
                "time_limit": time_limit})
            channel_id, queue = job_options.check_channel(self.env.cr, defaults["channel"], queue)
            options = job_options.check_options(queue, defaults["priority"],
                                                defaults["max_retries"], defaults["time_limit"],
                                                identity_key, description)
            eta = job_options.eta_from(eta, countdown)
            depends_on = job_options.check_depends_on(depends_on)
            encoded_args, encoded_kwargs, encoded_context = job_options.encode_call(
                args, kwargs, encoding.carried(self.env.context))
        except job_options.JobOptionError as error:
            raise UserError(str(error)) from None
        # The job will run with the user's rights: refuse at once what they cannot even read.
        target = self.env[model_name].browse(record_ids)
        target.check_access_rights("read")
        if record_ids and self.env.uid != SUPERUSER_ID:
            target.check_access_rule("read")
        if depends_on and self.env.uid != SUPERUSER_ID:
            self.browse(depends_on).check_access_rule("read")
        name = options["description"] or (method.__doc__ or "").strip().split("\n")[0][
            :job_options.DESCRIPTION_MAX] or "%s.%s" % (model_name, method_name)
        return {
            "name": name, "model_name": model_name, "method_name": method_name,
            "record_ids": encoding.dumps(record_ids), "args": encoded_args,
            "kwargs": encoded_kwargs, "context": encoded_context, "user_id": self.env.uid,
            "company_id": self.env.user.company_id.id, "queue": options["queue"],
            "priority": options["priority"], "eta": eta, "max_retries": options["max_retries"],
            "identity_key": options["identity_key"], "time_limit": options["time_limit"],
            "channel_id": channel_id,
        }, depends_on

    # ------------------------------------------------------------------ buttons

    def _check_manager(self):
        if not (self.env.uid == SUPERUSER_ID or self.env.user.has_group(MANAGER_GROUP)):
            raise AccessError(_("Only job managers may change jobs."))
        self.check_access_rule("read")

    def _moved(self):
        """After a change that reaches other jobs and batches than these too."""
        self.invalidate_cache()
        return True

    @api.multi
    def button_retry(self):
        """Run failed or cancelled jobs again, from a clean retry count (waiting again for
        the jobs they depend on that are not done)."""
        self._check_manager()
        try:
            retried = jobstore.retry(self.env.cr, self.ids, self.env.uid, self.env.user.name)
        except jobstore.IdentityKeyTaken as error:
            raise UserError(_("Not retried: %s") % "; ".join(
                _("job %(job)d has the identity key %(key)r of job %(other)d, still active")
                % {"job": job_id, "key": key, "other": other}
                for job_id, key, other in error.holders)) from None
        publish_after_commit(self.env.cr, retried)
        return self._moved()

    @api.multi
    def button_cancel(self):
        """Cancel jobs that have not started, and every job waiting for them; stop started
        jobs: their worker rolls their work back and ends them cancelled within seconds
        (the answer does not wait for it), unless they end on their own first."""
        self._check_manager()
        jobstore.cancel(self.env.cr, self.ids, self.env.uid)
        jobstore.request_stop(self.env.cr, self.ids, self.env.uid)
        return self._moved()

    @api.multi
    def button_done(self):
        """Mark jobs done by hand (for a job that ended outside this queue), releasing the
        jobs that waited for them only."""
        self._check_manager()
        publish_after_commit(self.env.cr, jobstore.set_done(self.env.cr, self.ids,
                                                             self.env.uid).released)
        return self._moved()

    @api.multi
    def unlink(self):
        """Managers delete ended jobs only: a job that may still run keeps its record."""
        self.check_access_rights("unlink")
        if self.filtered(lambda job: job.state not in jobstore.ENDED):
            raise UserError(_("Only ended jobs (done, failed or cancelled) can be deleted; "
                              "cancel the others first."))
        if self.sudo().mapped("dependent_ids").filtered(lambda job: job.state == jobstore.WAITING):
            raise UserError(_("Jobs waiting for these jobs would never run: cancel them first."))
        return super().unlink()

    # ------------------------------------------------------------------ progress

    @api.model
    def report_progress(self, percent, message=None):
        """Tell the Jobs screens how far the running job got (``percent`` 0-100, a message).

        Job code calls it as ``self.env["celery.job"].report_progress(40, "Page 2 of 5")``.
        Only the job that runs in this very process reports: anywhere else (an RPC call
        included) it does nothing. It commits on a cursor of its own, so the screens see it
        while the job's work is still uncommitted. Returns whether progress was recorded.
        """
        running = worker_process.running_job()
        if running is None or running[0] != self.env.cr.dbname:
            return False
        job_id = running[1]
        try:
            percent = max(0.0, min(100.0, float(percent)))
            message = None if message is None else str(message)[:1000]
            with self.pool.cursor() as cr:
                jobstore.record_progress(cr, job_id, percent, message)
                if worker_process.current().progress_message_due(job_id, percent >= 100):
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    partner = env["celery.job"].browse(job_id).user_id.partner_id
                    env["bus.bus"].sendone((cr.dbname, "res.partner", partner.id), {
                        "type": "celery.job.progress", "id": job_id, "progress": percent,
                        "message": message})
        except Exception:
            # Progress is for the screens: it never fails the job.
            _logger.warning("job %d: progress not recorded", job_id, exc_info=True)
            return False
        return True

    # ------------------------------------------------------------------ batches

    @api.model
    def _create_batch(self, name):
        """A new batch of this user, for jobs about to be enqueued together; its id."""
        return jobstore.create_batch(self.env.cr, name, self.env.uid,
                                     self.env.user.company_id.id)
