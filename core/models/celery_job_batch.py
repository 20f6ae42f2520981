from odoo import fields, models

from .. import jobstore

STATE_COUNTS = {  # field: the job states it counts
    "waiting_count": (jobstore.WAITING,),
    "queued_count": jobstore.QUEUED,
    "started_count": (jobstore.STARTED,),
    "done_count": (jobstore.DONE,),
    "failed_count": (jobstore.FAILED,),
    "cancelled_count": (jobstore.CANCELLED,),
}


class CeleryJobBatch(models.Model):
    """Jobs enqueued together (a ``group`` or a ``chain``), seen and notified as one thing.

    Nobody writes it: the job store creates it and counts each job's end off ``jobs_left``
    in the statement that ends the job; the batch ends (one notice to its user) when that
    reaches 0. The counts per state are counted on read, by one query over its jobs.
    """

    _name = "celery.job.batch"
    _description = "Batch of background jobs"
    _order = "id desc"

    name = fields.Char(required=True, readonly=True)
    user_id = fields.Many2one("res.users", required=True, readonly=True, index=True,
                              ondelete="cascade")
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    state = fields.Selection([("running", "Running"), ("ended", "Ended")], required=True,
                             default="running", readonly=True, index=True,
                             help="Ended once every job ended (done, failed or cancelled)")
    jobs_left = fields.Integer(readonly=True, help="Jobs not ended yet")
    date_done = fields.Datetime("Ended on", readonly=True)
    job_ids = fields.One2many("celery.job", "batch_id", string="Jobs", readonly=True)
    job_count = fields.Integer("Number of jobs", compute="_compute_counts")
    waiting_count = fields.Integer("Waiting", compute="_compute_counts")
    queued_count = fields.Integer("Queued", compute="_compute_counts")
    started_count = fields.Integer("Started", compute="_compute_counts")
    done_count = fields.Integer("Done", compute="_compute_counts")
    failed_count = fields.Integer("Failed", compute="_compute_counts")
    cancelled_count = fields.Integer("Cancelled", compute="_compute_counts")
    percent_done = fields.Float("Done (%)", compute="_compute_counts")

    def _compute_counts(self):
        counts = jobstore.batch_counts(self.env.cr, self.ids) if self.ids else {}
        for batch in self:
            by_state = counts.get(batch.id, {})
            for field, states in STATE_COUNTS.items():
                batch[field] = sum(by_state.get(state, 0) for state in states)
            batch.job_count = sum(by_state.values())
            batch.percent_done = 100.0 * batch.done_count / batch.job_count if batch.job_count else 0.0
