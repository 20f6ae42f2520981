"""Cancel on a started job: the button's part of a stop, in one transaction (the worker's
part runs in tests/server/test_stop.py)."""
from lxml import etree

from odoo.exceptions import AccessError
from odoo.tests import common

from ... import odoo_version
from .. import jobstore


class TestStopButton(common.TransactionCase):

    def setUp(self):
        super().setUp()
        Users = self.env["res.users"].with_context(no_reset_password=True)
        internal = self.env.ref("base.group_user")
        self.user = Users.create({"name": "Plain", "login": "plain_stop_jobs",
                                  "groups_id": [(6, 0, [internal.id])]})
        self.manager = Users.create({"name": "Stopping manager", "login": "manager_stop_jobs",
                                     "groups_id": [(6, 0, [internal.id, self.env.ref(
                                         "queue_celery.group_celery_job_manager").id])]})
        self.job = odoo_version.as_user(self.env["celery.job"], self.user).enqueue(
            "res.partner", "search", args=[[]]).sudo()
        self.env.cr.execute("UPDATE celery_job SET state = 'started' WHERE id = %s",
                            (self.job.id,))
        odoo_version.invalidate(self.job)

    def stop_requested(self):
        return jobstore.stop_requested(self.env.cr, self.job.id, self.job.celery_task_id)

    def test_cancel_asks_the_worker_of_a_started_job_to_stop_it_and_answers_at_once(self):
        odoo_version.as_user(self.job, self.manager).button_cancel()
        odoo_version.invalidate(self.job)
        self.assertEqual(self.job.state, "started", "its worker ends it")
        self.assertTrue(self.stop_requested())

    def test_only_a_job_manager_may_stop_a_job(self):
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.job, self.user).button_cancel()
        self.assertFalse(self.stop_requested())

    def test_the_form_offers_cancel_on_a_started_job(self):
        form = etree.fromstring(odoo_version.view_arch(
            odoo_version.as_user(self.env["celery.job"], self.manager), "form"))
        cancel, = form.xpath("//header/button[@name='button_cancel']")
        # Odoo 11 lists the states it shows in; Odoo 18 names those it hides in.
        shown_when = cancel.get("states") or cancel.get("invisible")
        self.assertIn("started", shown_when)
