"""Odoo 11's Action menu entries Retry and Cancel, on jobs selected in the list."""
from odoo.exceptions import AccessError
from odoo.tests import common


class TestBulkActions(common.TransactionCase):

    def test_retry_and_cancel_from_the_action_menu_for_managers_only(self):
        Users = self.env["res.users"].with_context(no_reset_password=True)
        internal = self.env.ref("base.group_user")
        user = Users.create({"name": "Plain", "login": "plain_bulk_jobs",
                             "groups_id": [(6, 0, [internal.id])]})
        manager = Users.create({"name": "Manager", "login": "manager_bulk_jobs", "groups_id": [
            (6, 0, [internal.id, self.env.ref("queue_celery.group_celery_job_manager").id])]})
        jobs = self.env["celery.job"]
        for _i in range(2):
            jobs |= self.env["celery.job"].sudo(user).enqueue("res.partner", "search", args=[[]])
        jobs = jobs.sudo()
        self.env.cr.execute("UPDATE celery_job SET state = 'failed' WHERE id IN %s",
                            (tuple(jobs.ids),))
        retry = self.env.ref("queue_celery.action_celery_job_retry")
        cancel = self.env.ref("queue_celery.action_celery_job_cancel")
        self.assertEqual(retry.binding_model_id.model, "celery.job")
        context = {"active_model": "celery.job", "active_ids": jobs.ids, "active_id": jobs[0].id}
        with self.assertRaises(AccessError):
            retry.sudo(user).with_context(**context).run()
        retry.sudo(manager).with_context(**context).run()
        jobs.invalidate_cache()
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        cancel.sudo(manager).with_context(**context).run()
        jobs.invalidate_cache()
        self.assertEqual(set(jobs.mapped("state")), {"cancelled"})
