"""A cron that runs as a job, on Odoo 18.0: its runs enqueue the job (``core/models/ir_cron.py``)."""
from odoo import models


class IrCron(models.Model):
    _inherit = "ir.cron"

    def _callback(self, cron_name, server_action_id):
        if self.sudo().celery_run_as_job:
            self._celery_enqueue_run()
            return
        super()._callback(cron_name, server_action_id)

    def method_direct_trigger(self):
        """Run Manually: a cron that runs as a job enqueues it, as its scheduled runs do."""
        self.ensure_one()
        if not self.celery_run_as_job:
            return super().method_direct_trigger()
        self.browse().check_access("write")
        self.with_context(lastcall=self.lastcall, cron_id=self.id)._celery_enqueue_run()
        return True
