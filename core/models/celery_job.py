"""The job record as the ORM and the screens see it, alike on every Odoo version; each
version's addon adds its methods. Every change of state goes through the job store
(``core/jobstore.py``)."""
import json
import logging

from odoo import api, fields, models
from odoo.exceptions import UserError

from ... import odoo_version
from .. import jobstore, settings
from ..celeryapp import DEFAULT_PRIORITY, MAX_PRIORITY, QUEUES, publish_after_commit

_logger = logging.getLogger(__name__)

STATES = [
    (jobstore.WAITING, "Waiting for other jobs"),  # until every job it depends on is done
    (jobstore.PENDING, "Pending"),      # written, not yet handed to the broker
    (jobstore.ENQUEUED, "Enqueued"),    # handed to the broker, or waiting for its eta
    (jobstore.STARTED, "Started"),
    (jobstore.DONE, "Done"),
    (jobstore.FAILED, "Failed"),
    (jobstore.CANCELLED, "Cancelled"),
]
MANAGER_GROUP = "queue_celery.group_celery_job_manager"
USER_GROUP = "queue_celery.group_celery_job_user"


class CeleryJob(models.Model):
    """A deferred call. Nobody writes its fields: ``enqueue`` creates it, the buttons and
    the workers move it, all through the job store; managers may delete ended jobs."""

    _name = "celery.job"
    _description = "Background job"
    _order = "id desc"

    # Every index is written at each of a job's state changes (their rows move from index
    # to index): the job store creates those its statements and screens need, no field
    # asks for one but ``user_id`` (the rule that shows users their own jobs).
    uuid = fields.Char(required=True, readonly=True, copy=False)  # indexed by its unique constraint
    name = fields.Char("Description", readonly=True)
    model_name = fields.Char("Model", required=True, readonly=True)
    method_name = fields.Char("Method", required=True, readonly=True)
    record_ids = fields.Text("Record IDs", readonly=True, help="JSON list of the target's ids")
    args = fields.Text("Arguments", readonly=True, help="JSON")
    kwargs = fields.Text("Keyword arguments", readonly=True, help="JSON")
    context = fields.Text(readonly=True, help="The enqueuing context, JSON")
    user_id = fields.Many2one("res.users", required=True, readonly=True, index=True,
                              ondelete="cascade")
    company_id = fields.Many2one("res.company", readonly=True)
    channel_id = fields.Many2one("celery.job.channel", "Channel", readonly=True,
                                 ondelete="restrict",
                                 help="Its limits and its parents' decide when it starts")
    held = fields.Boolean("Held by its channel", readonly=True,
                          help="Enqueued, waiting for its turn in its channel's path")
    queue = fields.Selection([(queue, queue.capitalize()) for queue in QUEUES],
                             required=True, default="default", readonly=True)
    priority = fields.Integer(default=DEFAULT_PRIORITY, readonly=True,
                              help="0 runs first, %d last" % MAX_PRIORITY)
    state = fields.Selection(STATES, required=True, default="pending", readonly=True)
    eta = fields.Datetime("Not before", readonly=True)
    retry_count = fields.Integer("Retries", default=0, readonly=True)
    max_retries = fields.Integer(default=jobstore.DEFAULT_MAX_RETRIES, readonly=True)
    result = fields.Text(readonly=True, help="JSON")
    exc_info = fields.Text("Traceback", readonly=True)
    celery_task_id = fields.Char("Celery task ID", readonly=True, copy=False)
    identity_key = fields.Char(readonly=True, copy=False)  # indexed while active (jobstore)
    worker_hostname = fields.Char("Worker", readonly=True)
    worker_pid = fields.Integer("Worker PID", readonly=True)
    date_enqueued = fields.Datetime("Enqueued on", readonly=True,
                                    help="Last time the job was handed to the broker")
    date_started = fields.Datetime("Started on", readonly=True)
    date_done = fields.Datetime("Ended on", readonly=True)
    exec_time = fields.Float("Run time (s)", readonly=True, **odoo_version.AVERAGED)
    time_limit = fields.Integer(readonly=True, help="Seconds the job may run; 0: the "
                                "celery_job_time_limit of odoo.conf")
    retry_history = fields.Text(readonly=True, help="One line per failed attempt, newest first")
    dependencies_left = fields.Integer(readonly=True, help="Jobs it waits for not done yet")
    depends_on_ids = fields.Many2many(
        "celery.job", "celery_job_dependency", "job_id", "depends_on_id", string="Waits for",
        readonly=True, help="It runs once every one of these jobs is done")
    dependent_ids = fields.Many2many(
        "celery.job", "celery_job_dependency", "depends_on_id", "job_id", string="Waited for by",
        readonly=True, help="They run once this job is done; cancelling it cancels them")
    batch_id = fields.Many2one("celery.job.batch", readonly=True, ondelete="set null")
    progress = fields.Float(compute="_compute_progress", help="Percent done, as last reported")
    progress_message = fields.Char(compute="_compute_progress")

    _sql_constraints = [
        ("uuid_unique", "unique(uuid)", "A job's UUID is unique."),
        ("priority_range", "check(priority between 0 and %d)" % MAX_PRIORITY,
         "A job's priority is between 0 and %d." % MAX_PRIORITY),
        ("max_retries_positive", "check(max_retries >= 0)", "max_retries cannot be negative."),
    ]

    def button_related(self):
        """Open what the job worked on, as the user who asks reads it: the action its job
        function's related action returns, or its records (a list when several). Refused
        (AccessError) for a job or records the user may not read."""
        self.ensure_one()
        odoo_version.check_read(self)
        if self.model_name not in self.env:
            raise UserError("Model %s is not installed any more." % self.model_name)
        records = self.env[self.model_name].browse(json.loads(self.record_ids or "[]")).exists()
        odoo_version.check_read(records)
        function = self.env["celery.job.function"].sudo().search(
            [("model_name", "=", self.model_name), ("method_name", "=", self.method_name)],
            limit=1)
        if function.related_action:
            action = getattr(records, function.related_action, None)
            if not callable(action):
                raise UserError("The related action %s of %s is not a method of its model."
                                % (function.related_action, function.name))
            return action()
        if not records:
            raise UserError("This job worked on no record, or they were deleted since.")
        if len(records) == 1:
            return {"type": "ir.actions.act_window", "res_model": records._name,
                    "name": records.display_name, "res_id": records.id, "view_mode": "form",
                    "views": [(False, "form")]}
        return {"type": "ir.actions.act_window", "res_model": records._name,
                "name": self.name, "domain": [("id", "in", records.ids)],
                "view_mode": "%s,form" % odoo_version.LIST_VIEW,
                "views": [(False, odoo_version.LIST_VIEW), (False, "form")]}

    def _compute_progress(self):
        rows = jobstore.progress(self.env.cr, self.ids) if self.ids else {}
        for job in self:
            job.progress, job.progress_message = rows.get(job.id, (0.0, False))

    # ------------------------------------------------------------------ enqueue

    @api.model
    def _enqueue_many(self, calls):
        """Jobs of ``calls`` (``(records, method name, args, kwargs, options)`` each, the
        options ``with_delay``'s), each checked as ``_enqueue`` checks it for the user of its
        records, written in one INSERT and published together after commit (one producer):
        ``with_delay()`` in a loop costs a statement a job. The jobs, in order."""
        rows = []
        for records, method_name, args, kwargs, options in calls:
            if records.env.cr is not self.env.cr:
                raise UserError("The calls of one enqueue_many() are of one transaction.")
            values, _depends_on = records.env["celery.job"]._job_values(
                records._name, records.ids, method_name, args, kwargs, **options)
            rows.append(values)
        jobs = jobstore.insert_many(self.env.cr, rows)
        dispatches = [dispatch for _job_id, dispatch in jobs if dispatch]
        if dispatches:
            publish_after_commit(self.env.cr, dispatches)
        return self.browse([job_id for job_id, _dispatch in jobs])

    # ------------------------------------------------------------------ crons

    @api.model
    def _cron_sweep(self):
        """Publish jobs the broker never got or lost, and recover jobs of dead workers."""
        with odoo_version.read_committed_cursor(self.env.cr.dbname) as cr:
            dispatches, notices = jobstore.sweep(
                cr, settings.parameter(cr, "sweep_grace_seconds"), settings.option("eta_window"),
                settings.parameter(cr, "republish_after_seconds"))
            if dispatches:
                _logger.info("sweeper: publishing %d job(s) again", len(dispatches))
                publish_after_commit(cr, dispatches)
        if notices:
            with odoo_version.read_committed_cursor(odoo_version.BUS_DATABASE) as cr:
                odoo_version.wake_bus(odoo_version.connection(cr), notices)
        return len(dispatches)

    @api.model
    def _cron_cleanup(self, batch_size=10000):
        """Delete done and cancelled jobs, and later failed ones, in committed batches."""
        deleted = 0
        for states, days in (
                ((jobstore.DONE, jobstore.CANCELLED),
                 settings.parameter(self.env.cr, "done_retention_days")),
                ((jobstore.FAILED,), settings.parameter(self.env.cr, "failed_retention_days"))):
            while True:
                count = jobstore.delete_ended(self.env.cr, states, days, batch_size)
                deleted += count
                # Short transactions: never a long lock on the job table.
                self.env.cr.commit()  # pylint: disable=invalid-commit
                if count < batch_size:
                    break
        return deleted
