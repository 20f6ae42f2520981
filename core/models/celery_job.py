"""The job record as the ORM and the screens see it, alike on every Odoo version; each
version's addon adds its methods. Every change of state goes through the job store
(``core/jobstore.py``)."""
from odoo import fields, models

from ... import odoo_version
from .. import jobstore
from ..celeryapp import DEFAULT_PRIORITY, MAX_PRIORITY, QUEUES

STATES = [
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

    uuid = fields.Char(required=True, readonly=True, copy=False)  # indexed by its unique constraint
    name = fields.Char("Description", readonly=True)
    model_name = fields.Char("Model", required=True, readonly=True, index=True)
    method_name = fields.Char("Method", required=True, readonly=True)
    record_ids = fields.Text("Record IDs", readonly=True, help="JSON list of the target's ids")
    args = fields.Text("Arguments", readonly=True, help="JSON")
    kwargs = fields.Text("Keyword arguments", readonly=True, help="JSON")
    context = fields.Text(readonly=True, help="The enqueuing context, JSON")
    user_id = fields.Many2one("res.users", required=True, readonly=True, index=True,
                              ondelete="cascade")
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    queue = fields.Selection([(queue, queue.capitalize()) for queue in QUEUES],
                             required=True, default="default", readonly=True, index=True)
    priority = fields.Integer(default=DEFAULT_PRIORITY, readonly=True,
                              help="0 runs first, %d last" % MAX_PRIORITY)
    state = fields.Selection(STATES, required=True, default="pending", readonly=True, index=True)
    eta = fields.Datetime("Not before", readonly=True)
    retry_count = fields.Integer("Retries", default=0, readonly=True)
    max_retries = fields.Integer(default=jobstore.DEFAULT_MAX_RETRIES, readonly=True)
    result = fields.Text(readonly=True, help="JSON")
    exc_info = fields.Text("Traceback", readonly=True)
    celery_task_id = fields.Char("Celery task ID", readonly=True, index=True, copy=False)
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
    progress = fields.Float(compute="_compute_progress", help="Percent done, as last reported")
    progress_message = fields.Char(compute="_compute_progress")

    _sql_constraints = [
        ("uuid_unique", "unique(uuid)", "A job's UUID is unique."),
        ("priority_range", "check(priority between 0 and %d)" % MAX_PRIORITY,
         "A job's priority is between 0 and %d." % MAX_PRIORITY),
        ("max_retries_positive", "check(max_retries >= 0)", "max_retries cannot be negative."),
    ]
