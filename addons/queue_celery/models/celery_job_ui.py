"""What the Jobs screens need beyond the job itself: progress, retry history, live updates.

Nothing here runs on enqueue: progress lives in its own table, written on its own cursor
(the job's row is updated by the job's own REPEATABLE READ transaction when it ends, so
another transaction must not update it meanwhile), and the retry history is kept by a
trigger that fires only when a traceback is written.
"""
import logging
import time

from odoo import SUPERUSER_ID, api, fields, models
from odoo.addons.bus.controllers.main import BusController
from odoo.http import request

_logger = logging.getLogger(__name__)

# A running job sends at most one progress message on the bus per this many seconds.
PROGRESS_BUS_INTERVAL = 1.0
HISTORY_MAX_CHARS = 10000
_last_progress_message = {}


class CeleryJobProgress(models.Model):
    """The last progress a running job reported: one row per job, upserted."""

    _name = "celery.job.progress"
    _description = "Background job progress"
    _log_access = False

    job_id = fields.Many2one("celery.job", required=True, index=True, ondelete="cascade")
    percent = fields.Float()
    message = fields.Char()
    date = fields.Datetime()

    _sql_constraints = [("job_unique", "unique(job_id)", "A job has one progress row.")]  # noqa: RUF012


class CeleryJob(models.Model):
    _inherit = "celery.job"

    progress = fields.Float(compute="_compute_progress", help="Percent done, as last reported")
    progress_message = fields.Char(compute="_compute_progress")
    retry_history = fields.Text(readonly=True, help="One line per failed attempt, newest first")

    @api.model_cr
    def init(self):
        result = super().init()
        # The worker writes a traceback on each failure (the same text when a job fails the
        # same way again); this keeps a line of each, newest first, without a row per
        # attempt and without any cost on enqueue.
        self.env.cr.execute(r"""
            CREATE OR REPLACE FUNCTION celery_job_retry_history() RETURNS trigger AS $$
            BEGIN
                NEW.retry_history := left(
                    to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC  attempt '
                    || (OLD.retry_count + 1) || ' '
                    || CASE WHEN NEW.state = 'failed' THEN 'failed' ELSE 'failed, retry planned' END
                    || ': ' || coalesce(substring(NEW.exc_info from '([^\n]+)\s*$'), '?')
                    || coalesce(E'\n' || OLD.retry_history, ''), %s);
                RETURN NEW;
            END $$ LANGUAGE plpgsql;
            DROP TRIGGER IF EXISTS celery_job_retry_history ON celery_job;
            CREATE TRIGGER celery_job_retry_history BEFORE UPDATE OF exc_info ON celery_job
                FOR EACH ROW WHEN (NEW.exc_info IS NOT NULL)
                EXECUTE PROCEDURE celery_job_retry_history();
        """, (HISTORY_MAX_CHARS,))
        return result

    @api.multi
    def _compute_progress(self):
        rows = {}
        if self.ids:
            self.env.cr.execute("SELECT job_id, percent, message FROM celery_job_progress"
                                " WHERE job_id IN %s", (tuple(self.ids),))
            rows = {job_id: (percent, message) for job_id, percent, message in self.env.cr.fetchall()}
        for job in self:
            job.progress, job.progress_message = rows.get(job.id, (0.0, False))

    @api.multi
    def report_progress(self, percent, message=None):
        """Tell the Jobs screens how far the running job got (``percent`` 0-100, a message).

        Call it from job code as ``self.env["celery.job"].report_progress(40, "Page 2 of 5")``
        (the job is found from the context's ``celery_job_uuid``), or on a job record. It
        commits on a cursor of its own, so the screens see it while the job's work is still
        uncommitted; outside a job it does nothing. Returns whether progress was recorded.
        """
        jobs = self
        if not jobs:
            job_uuid = self.env.context.get("celery_job_uuid")
            if not job_uuid:
                return False
            jobs = self.sudo().search([("uuid", "=", job_uuid)])
        percent = max(0.0, min(100.0, float(percent)))
        try:
            with self.pool.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                cr.execute(
                    "INSERT INTO celery_job_progress (job_id, percent, message, date)"
                    " SELECT id, %s, %s, now() at time zone 'UTC' FROM celery_job"
                    " WHERE id IN %s ON CONFLICT (job_id) DO UPDATE SET percent = EXCLUDED.percent,"
                    " message = EXCLUDED.message, date = EXCLUDED.date",
                    (percent, message, tuple(jobs.ids)))
                env["celery.job"].browse(jobs.ids)._notify_progress(percent, message)
        except Exception:
            # Progress is for the screens: it never fails the job.
            _logger.warning("jobs %s: progress not recorded", jobs.ids, exc_info=True)
            return False
        return True

    def _notify_progress(self, percent, message):
        now = time.monotonic()
        jobs = self.filtered(lambda job: percent >= 100 or now - _last_progress_message.get(
            job.id, 0) >= PROGRESS_BUS_INTERVAL)
        if not jobs:
            return
        if len(_last_progress_message) > 10000:
            _last_progress_message.clear()
        for job in jobs:
            _last_progress_message[job.id] = now
        self.env["bus.bus"].sendmany([
            ((self._cr.dbname, "res.partner", job.user_id.partner_id.id),
             {"type": "celery.job.progress", "id": job.id, "progress": percent,
              "message": message}) for job in jobs])

    @api.multi
    def button_retry(self):
        """Run failed or cancelled jobs again; the retry history notes who asked."""
        retried = self.filtered(lambda job: job.state in ("failed", "cancelled"))
        result = super().button_retry()
        if retried:
            self.env.cr.execute(
                "UPDATE celery_job SET retry_history = left(to_char(now() at time zone 'UTC',"
                " 'YYYY-MM-DD HH24:MI:SS') || ' UTC  retried by ' || %s"
                " || coalesce(E'\n' || retry_history, ''), %s) WHERE id IN %s",
                (self.env.user.name, HISTORY_MAX_CHARS, tuple(retried.ids)))
            self.env.cr.execute("DELETE FROM celery_job_progress WHERE job_id IN %s",
                                (tuple(retried.ids),))
            self.invalidate_cache(["retry_history"], retried.ids)
        return result


class CeleryJobBusController(BusController):
    """Listen on the user's partner channel, where job notifications are sent.

    The ``mail`` addon does the same; without it nothing subscribes the web client there
    (and the browser may not name channels other than strings itself).
    """

    def _poll(self, dbname, channels, last, options):
        if request.session.uid:
            channel = (request.db, "res.partner", request.env.user.partner_id.id)
            if channel not in channels:
                channels = list(channels) + [channel]
        return super()._poll(dbname, channels, last, options)
