from odoo.exceptions import AccessError, UserError
from odoo.tests import common

from ... import odoo_version
from ...core.canvas import enqueue_many


class TestSecurity(common.TransactionCase):

    def setUp(self):
        super().setUp()
        Users = self.env["res.users"].with_context(no_reset_password=True)
        internal = self.env.ref("base.group_user")
        self.alice = Users.create({"name": "Alice", "login": "alice_jobs",
                                   "groups_id": [(6, 0, [internal.id])]})
        self.bob = Users.create({"name": "Bob", "login": "bob_jobs",
                                 "groups_id": [(6, 0, [internal.id])]})
        self.manager = Users.create({"name": "Manager", "login": "manager_jobs", "groups_id": [
            (6, 0, [internal.id, self.env.ref("queue_celery.group_celery_job_manager").id])]})
        self.portal = Users.create({"name": "Portal", "login": "portal_jobs",
                                    "groups_id": [(6, 0, [self.env.ref("base.group_portal").id])]})
        self.alice_job = odoo_version.as_user(self.env["celery.job"], self.alice).enqueue(
            "res.partner", "search", args=[[]])
        self.bob_job = odoo_version.as_user(self.env["celery.job"], self.bob).enqueue(
            "res.partner", "search", args=[[]])

    def test_internal_users_are_job_users_and_see_only_their_jobs(self):
        self.assertTrue(self.alice.has_group("queue_celery.group_celery_job_user"))
        jobs = odoo_version.as_user(self.env["celery.job"], self.alice).search([])
        self.assertIn(self.alice_job, jobs)
        self.assertNotIn(self.bob_job, jobs)
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.bob_job, self.alice).read(["state"])

    def test_managers_see_and_manage_every_job(self):
        jobs = odoo_version.as_user(self.env["celery.job"], self.manager).search([])
        self.assertIn(self.alice_job, jobs)
        self.assertIn(self.bob_job, jobs)
        odoo_version.as_user(self.bob_job, self.manager).button_cancel()
        self.assertEqual(self.bob_job.state, "cancelled")

    def test_users_cannot_change_jobs(self):
        job = odoo_version.as_user(self.alice_job, self.alice)
        for button in ("button_cancel", "button_done", "button_retry"):
            with self.assertRaises(AccessError):
                getattr(job, button)()
        with self.assertRaises(AccessError):
            job.write({"state": "done"})
        with self.assertRaises(AccessError):
            job.write({"method_name": "unlink"})
        with self.assertRaises(AccessError):
            job.unlink()
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.env["celery.job"], self.alice).create({
                "uuid": "x", "model_name": "res.partner", "method_name": "unlink",
                "user_id": self.env.ref("base.user_root").id})
        self.assertEqual(self.alice_job.state, "pending")

    def test_portal_users_cannot_enqueue(self):
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.env["celery.job"], self.portal).enqueue("res.partner", "search", args=[[]])
        partners = odoo_version.as_user(self.env["res.partner"], self.portal)
        with self.assertRaises(AccessError):
            enqueue_many([partners.delayable().search([])])

    def test_enqueue_many_runs_each_job_as_the_user_of_its_records(self):
        alice_partners = odoo_version.as_user(self.env["res.partner"], self.alice)
        jobs = enqueue_many([alice_partners.delayable().search([]),
                             odoo_version.as_user(self.env["res.partner"], self.bob)
                             .delayable().search([])])
        self.assertEqual([job.user_id for job in jobs.sudo()], [self.alice, self.bob])
        mine = odoo_version.as_user(self.env["celery.job"], self.alice).search([])
        self.assertIn(jobs[0], mine)
        self.assertNotIn(jobs[1], mine)

    def test_nobody_writes_a_job_managers_delete_only_ended_ones(self):
        manager_job = odoo_version.as_user(self.alice_job, self.manager)
        for field, value in (("user_id", self.env.ref("base.user_root").id),
                             ("model_name", "res.users"), ("method_name", "write"),
                             ("record_ids", "[1]"), ("args", "[{}]"), ("kwargs", "{}"),
                             ("context", "{}"), ("company_id", False), ("state", "done"),
                             ("identity_key", "x"), ("time_limit", 1)):
            with self.assertRaises(AccessError, msg=field):
                manager_job.write({field: value})
        with self.assertRaises(UserError):
            manager_job.unlink()
        manager_job.button_cancel()
        manager_job.unlink()
        self.assertFalse(self.alice_job.exists())

    def test_identity_keys_are_scoped_per_user(self):
        first = odoo_version.as_user(self.env["celery.job"], self.alice).enqueue("res.partner", "search",
                                                               args=[[]], identity_key="k")
        second = odoo_version.as_user(self.env["celery.job"], self.bob).enqueue("res.partner", "search",
                                                              args=[[]], identity_key="k")
        self.assertNotEqual(first, second)
        self.assertEqual(second.sudo().user_id, self.bob)
        again = odoo_version.as_user(self.env["celery.job"], self.alice).enqueue("res.partner", "search",
                                                               args=[[]], identity_key="k")
        self.assertEqual(again, first)

    def test_progress_rows_are_read_through_their_job_only(self):
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.env["celery.job.progress"], self.manager).search([])

    def test_progress_is_reported_only_by_the_job_running_in_this_process(self):
        job = odoo_version.as_user(self.alice_job, self.alice)
        self.assertFalse(job.with_context(celery_job_uuid=self.alice_job.uuid)
                         .report_progress(50, "forged"))
        self.assertEqual(self.alice_job.progress, 0.0)
