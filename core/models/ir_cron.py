"""Scheduled actions that run as jobs: with "Run as a job" checked, each run of the cron
enqueues its action as a job of the cron's user instead of running it in the cron worker.
Each version's addon makes the cron's runs (``_callback``, "Run Manually") call
``_celery_enqueue_run``."""
from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import ValidationError

from ... import odoo_version
from .. import job_options
from ..celeryapp import QUEUES
from ..jobstore import DEFAULT_MAX_RETRIES

# The context entries Odoo gives a cron's run that its job keeps (Odoo 18: the last
# successful run, the cron).
CRON_CONTEXT = ("lastcall", "cron_id")


class IrCron(models.Model):
    _inherit = "ir.cron"

    celery_run_as_job = fields.Boolean(
        "Run as a job", help="Each run enqueues the action as a job (Settings > Jobs) that a "
        "Celery worker runs as the cron's user, with retries and a time limit, instead of "
        "running it in the cron worker. While that job has not ended, runs enqueue no other.")
    celery_queue = fields.Selection([(queue, queue.capitalize()) for queue in QUEUES],
                                    "Job queue", required=True, default="default")
    celery_time_limit = fields.Integer(
        "Job time limit", help="Seconds the job may run; 0: celery_job_time_limit of odoo.conf")
    celery_max_retries = fields.Integer("Job retries", default=DEFAULT_MAX_RETRIES,
                                        help="How often the job may be retried")

    @api.constrains("celery_run_as_job", "celery_queue", "celery_time_limit",
                    "celery_max_retries", "user_id")
    def _check_celery_job(self):
        for cron in self.filtered("celery_run_as_job"):
            try:
                job_options.check_options(cron.celery_queue, None, cron.celery_max_retries,
                                          cron.celery_time_limit or None, None, None)
            except job_options.JobOptionError as error:
                raise ValidationError(str(error)) from None
            # The job is enqueued as the cron's user, who reads the cron (Odoo's own rights).
            if not (cron.user_id.id == SUPERUSER_ID or cron.user_id.has_group("base.group_system")):
                raise ValidationError(
                    "%s runs as a job of its user %s, who must be an administrator or the "
                    "superuser (the users who may read scheduled actions)."
                    % (cron.name, cron.user_id.name))

    def _celery_enqueue_run(self):
        """Enqueue this cron's run as a job of the cron's user; returns it, or the cron's job
        that has not ended yet (its identity key: a slow run is not stacked up)."""
        self.ensure_one()
        cron = self.sudo()  # its settings, whoever triggers the run
        context = {key: self.env.context[key] for key in CRON_CONTEXT if key in self.env.context}
        return odoo_version.as_user(self.env["celery.job"], cron.user_id).with_context(
            context)._enqueue(
            self._name, self.ids, "_celery_run_cron_job", queue=cron.celery_queue,
            max_retries=cron.celery_max_retries, time_limit=cron.celery_time_limit or None,
            description="Scheduled action: %s" % cron.name, identity_key="ir.cron-%d" % cron.id)

    def _celery_run_cron_job(self):
        """What the cron would run: its action, as the job's user (the cron's)."""
        self.ensure_one()
        return self.env["ir.actions.server"].browse(self.sudo().ir_actions_server_id.id).run()
