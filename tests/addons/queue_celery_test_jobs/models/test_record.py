import time

from odoo import api, fields, models
from odoo.addons.queue_celery import RetryableJobError
from odoo.exceptions import UserError

# What jobs left behind in their worker process, on purpose: a leak.
_kept = []


class JobRecord(models.Model):
    """One row per job run: counting rows by marker counts the runs that committed."""

    _name = "queue.celery.test.record"
    _description = "queue_celery test record"

    marker = fields.Char(index=True)
    value = fields.Text()

    def _current_job(self):
        return self.env["celery.job"].sudo().search(
            [("uuid", "=", self.env.context["celery_job_uuid"])])

    @api.model
    def make(self, marker, value=None):
        """Write one row."""
        return self.create({"marker": marker, "value": repr(value)}).id

    @api.model
    def make_then_fail(self, marker):
        """Write one row, then raise: the row must be rolled back."""
        self.create({"marker": marker})
        raise UserError("boom %s" % marker)

    @api.model
    def make_after_retries(self, marker, retries):
        """Ask for a retry until the job was retried ``retries`` times, then write one row."""
        self.create({"marker": marker + "-attempt"})
        if self._current_job().retry_count < retries:
            raise RetryableJobError("not yet", seconds=0.2)
        return self.make(marker)

    def related_action_open_marker(self):
        """The related action of ``make`` jobs: the rows of the job's marker, in a list."""
        return {"type": "ir.actions.act_window", "res_model": self._name,
                "name": "Rows", "domain": [("marker", "in", self.mapped("marker"))]}

    @api.model
    def retry_by_pattern(self, marker):
        """Ask for a retry after its job function's retry pattern (no seconds given)."""
        self.create({"marker": marker + "-attempt"})
        raise RetryableJobError("again")

    @api.model
    def make_unless_blocked(self, marker):
        """Fail while a row marked ``blocked-<marker>`` exists; then write one row."""
        if self.search_count([("marker", "=", "blocked-" + marker)]):
            raise UserError("blocked %s" % marker)
        return self.make(marker)

    @api.model
    def sleep_then_make(self, marker, seconds):
        """Write one row after ``seconds``."""
        time.sleep(seconds)
        return self.make(marker)

    @api.model
    def make_and_keep_memory(self, marker, megabytes):
        """Write one row and keep ``megabytes`` of memory (written: resident) after the job."""
        _kept.append(b"\x01" * (megabytes * 2 ** 20))
        return self.make(marker)

    @api.model
    def eat_memory(self, megabytes):
        """Hold ``megabytes`` of memory."""
        hoard = bytearray(megabytes * 1024 * 1024)
        return len(hoard)

    @api.model
    def make_then_spin(self, marker):
        """Write one row, then never return, busy in Python."""
        self.make(marker)
        while True:
            pass

    @api.model
    def make_then_sleep_in_sql(self, marker, seconds):
        """Write one row, then wait ``seconds`` in one SQL statement."""
        self.make(marker)
        self.env.cr.execute("SELECT pg_sleep(%s)", (seconds,))
        return self.make(marker + "-after")

    @api.model
    def spin_forever(self):
        """Never return."""
        while True:
            pass
