"""Odoo 18's list header buttons Retry and Cancel, on jobs selected in the list."""
from odoo.tests import common


class TestListButtons(common.TransactionCase):

    def test_the_list_offers_retry_and_cancel_to_managers(self):
        manager = self.env["res.users"].with_context(no_reset_password=True).create({
            "name": "Manager", "login": "manager_list_jobs", "groups_id": [(6, 0, [
                self.env.ref("base.group_user").id,
                self.env.ref("queue_celery.group_celery_job_manager").id])]})
        arch = self.env["celery.job"].with_user(manager).get_view(view_type="list")["arch"]
        self.assertIn('name="button_retry"', arch)
        self.assertIn('name="button_cancel"', arch)
