"""A cron that runs as a job, on Odoo 11.0: its runs enqueue the job (``core/models/ir_cron.py``)."""
from odoo import api, models


class IrCron(models.Model):
    _inherit = "ir.cron"

    @api.model
    def _callback(self, cron_name, server_action_id, job_id):
        cron = self.browse(job_id)
        if cron.sudo().celery_run_as_job:
            cron._celery_enqueue_run()
            return
        super()._callback(cron_name, server_action_id, job_id)

    @api.multi
    def method_direct_trigger(self):
        """Run Manually: a cron that runs as a job enqueues it, as its scheduled runs do."""
        self.check_access_rights("write")
        for cron in self:
            if cron.celery_run_as_job:
                cron._celery_enqueue_run()
            else:
                super(IrCron, cron).method_direct_trigger()
        return True
