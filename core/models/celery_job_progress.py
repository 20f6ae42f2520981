from odoo import fields, models


class CeleryJobProgress(models.Model):
    """The last progress a running job reported: one row per job, upserted on a cursor of
    its own (the job's row is updated by the job's own transaction when it ends, so another
    transaction must not update it meanwhile). Read through the job's ``progress`` fields
    only: no group has access to this model, so the job's record rules are the only ones."""

    _name = "celery.job.progress"
    _description = "Background job progress"
    _log_access = False

    job_id = fields.Many2one("celery.job", required=True, index=True, ondelete="cascade")
    percent = fields.Float()
    message = fields.Char()
    date = fields.Datetime()

    _sql_constraints = [("job_unique", "unique(job_id)", "A job has one progress row.")]  # noqa: RUF012
