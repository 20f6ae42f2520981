from odoo import api, models


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.model
    def _get_company(self):
        """A job's company while it runs (see odoo_version.company_context): company
        defaults follow the company it was enqueued in, when the user still belongs to it."""
        company_id = self.env.context.get("celery_job_company_id")
        if company_id and company_id in self.env.user.company_ids.ids:
            return self.env["res.company"].browse(company_id)
        return super()._get_company()
