"""The Jobs screens: who sees what, the buttons by state, bulk actions, history, progress."""
from odoo.exceptions import AccessError
from odoo.tests import common

from ... import odoo_version


class TestJobScreens(common.TransactionCase):

    def setUp(self):
        super().setUp()
        Users = self.env["res.users"].with_context(no_reset_password=True)
        internal = self.env.ref("base.group_user")
        manager_group = self.env.ref("queue_celery.group_celery_job_manager")
        self.main_company = self.env.ref("base.main_company")
        self.other_company = self.env["res.company"].create({"name": "Other jobs company"})
        self.user = Users.create({"name": "Plain", "login": "plain_ui_jobs",
                                  "groups_id": [(6, 0, [internal.id])]})
        self.manager = Users.create({"name": "Main manager", "login": "manager_ui_jobs",
                                     "groups_id": [(6, 0, [internal.id, manager_group.id])]})
        self.other = Users.create({
            "name": "Other", "login": "other_ui_jobs", "groups_id": [(6, 0, [internal.id])],
            "company_id": self.other_company.id, "company_ids": [(6, 0, [self.other_company.id])]})
        self.job = self.enqueue(self.user)
        self.other_job = self.enqueue(self.other)

    def enqueue(self, user):
        return odoo_version.as_user(self.env["celery.job"], user).enqueue("res.partner", "search", args=[[]]).sudo()

    def fail(self, job, message, retry_planned=False):
        """Record a failure the way the worker does (plain SQL on the job's row)."""
        self.env.cr.execute(
            "UPDATE celery_job SET state = %s, retry_count = retry_count + %s, exc_info = %s"
            " WHERE id = %s", ("enqueued" if retry_planned else "failed", int(retry_planned),
                              "Traceback (most recent call last):\n  ...\n" + message, job.id))
        odoo_version.invalidate(job)

    def test_a_manager_manages_the_jobs_of_their_companies_only(self):
        self.assertEqual(self.other_job.company_id, self.other_company)
        as_manager = odoo_version.as_user(self.env["celery.job"], self.manager)
        self.assertIn(self.job, as_manager.search([]))
        self.assertNotIn(self.other_job, as_manager.search([]))
        self.fail(self.other_job, "ValueError: x")
        for button in ("button_retry", "button_cancel", "button_done"):
            with self.assertRaises(AccessError):
                getattr(odoo_version.as_user(self.other_job, self.manager), button)()
        self.assertEqual(self.other_job.state, "failed")
        self.manager.write({"company_ids": [(4, self.other_company.id)]})
        self.assertIn(self.other_job, as_manager.search([]))
        odoo_version.as_user(self.other_job, self.manager).button_retry()
        self.assertEqual(self.other_job.state, "pending")

    def test_a_user_cannot_retry_a_job_they_cannot_see(self):
        self.fail(self.other_job, "ValueError: x")
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.other_job, self.user).button_retry()
        self.assertEqual(self.other_job.state, "failed")

    def test_buttons_move_only_the_jobs_they_apply_to(self):
        manager_job = odoo_version.as_user(self.job, self.manager)
        manager_job.button_retry()
        self.assertEqual(self.job.state, "pending", "retry applies to failed/cancelled jobs only")
        manager_job.button_cancel()
        self.assertEqual(self.job.state, "cancelled")
        manager_job.button_cancel()
        self.assertEqual(self.job.state, "cancelled")
        manager_job.button_retry()
        self.assertEqual(self.job.state, "pending")
        self.fail(self.job, "ValueError: x")
        manager_job.button_cancel()
        self.assertEqual(self.job.state, "failed", "a failed job is not cancelled")
        manager_job.button_done()
        self.assertEqual(self.job.state, "done")

    def test_bulk_retry_and_cancel(self):
        second = self.enqueue(self.user)
        jobs = self.job | second
        for job in jobs:
            self.fail(job, "ValueError: x")
        with self.assertRaises(AccessError):
            odoo_version.as_user(jobs, self.user).button_retry()
        odoo_version.as_user(jobs, self.manager).button_retry()
        odoo_version.invalidate(jobs)
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        odoo_version.as_user(jobs, self.manager).button_cancel()
        odoo_version.invalidate(jobs)
        self.assertEqual(set(jobs.mapped("state")), {"cancelled"})

    def test_retry_history_keeps_a_line_per_failure_and_manual_retry(self):
        self.fail(self.job, "OperationalError: deadlock", retry_planned=True)
        self.fail(self.job, "UserError: boom")
        odoo_version.as_user(self.job, self.manager).button_retry()
        self.fail(self.job, "UserError: boom again")
        lines = self.job.retry_history.splitlines()
        self.assertEqual(len(lines), 4, lines)
        odoo_version.as_user(self.job, self.manager).button_retry()
        self.fail(self.job, "UserError: boom again")
        self.assertEqual(len(self.job.retry_history.splitlines()), 6,
                         "the same traceback again is a new failure too")
        self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  attempt 1 failed: "
                                   r"UserError: boom again$")
        self.assertIn("retried by Main manager", lines[1])
        self.assertTrue(lines[2].endswith("attempt 2 failed: UserError: boom"), lines[2])
        self.assertTrue(lines[3].endswith("attempt 1 failed, retry planned: "
                                          "OperationalError: deadlock"), lines[3])
        self.assertIn("boom again", self.job.exc_info, "the last traceback stays whole")

    def test_progress_is_read_from_its_own_table_and_cleared_on_retry(self):
        self.assertEqual((self.job.progress, self.job.progress_message), (0.0, False))
        self.env.cr.execute("INSERT INTO celery_job_progress (job_id, percent, message)"
                            " VALUES (%s, 40, 'Page 2 of 5')", (self.job.id,))
        odoo_version.invalidate(self.job)
        self.assertEqual(odoo_version.as_user(self.job, self.user).progress, 40.0)
        self.assertEqual(odoo_version.as_user(self.job, self.user).progress_message, "Page 2 of 5")
        self.fail(self.job, "ValueError: x")
        odoo_version.as_user(self.job, self.manager).button_retry()
        odoo_version.invalidate(self.job)
        self.assertEqual(self.job.progress, 0.0)

    def test_plain_users_reach_jobs_through_their_own_app_managers_through_settings(self):
        def visible(user):
            return set(odoo_version.as_user(self.env["ir.ui.menu"], user)._visible_menu_ids())
        in_settings = self.env.ref("queue_celery.menu_celery_job").id
        app = self.env.ref("queue_celery.menu_celery_job_root").id
        self.assertIn(app, visible(self.user))
        self.assertNotIn(in_settings, visible(self.user))
        self.assertIn(in_settings, visible(self.manager))

    def test_views_load_for_a_plain_user(self):
        Jobs = odoo_version.as_user(self.env["celery.job"], self.user)
        for view_type in (odoo_version.LIST_VIEW, "form", "search", "pivot", "graph"):
            odoo_version.view_arch(Jobs, view_type)
        search = odoo_version.view_arch(Jobs, "search")
        for name in ("pending", "enqueued", "started", "failed", "done", "cancelled", "my_jobs",
                     "group_state", "group_queue", "group_model", "group_user", "group_day",
                     "waiting", "group_batch"):
            self.assertIn(f'name="{name}"', search)
        form = odoo_version.view_arch(Jobs, "form")
        self.assertIn("retry_history", form)
        self.assertIn("dependent_ids", form)
        batches = odoo_version.as_user(self.env["celery.job.batch"], self.user)
        for view_type in (odoo_version.LIST_VIEW, "form", "search"):
            odoo_version.view_arch(batches, view_type)
        self.assertIn("progress", form)

    def test_the_job_screens_show_its_channel_and_managers_see_channels_and_functions(self):
        Jobs = odoo_version.as_user(self.env["celery.job"], self.user)
        for view_type in (odoo_version.LIST_VIEW, "form", "search"):
            self.assertIn('name="channel_id"', odoo_version.view_arch(Jobs, view_type))
        self.assertIn('name="group_channel"', odoo_version.view_arch(Jobs, "search"))
        self.assertIn('name="button_related"', odoo_version.view_arch(Jobs, "form"))
        for model in ("celery.job.channel", "celery.job.function"):
            records = odoo_version.as_user(self.env[model], self.manager)
            for view_type in (odoo_version.LIST_VIEW, "form", "search"):
                odoo_version.view_arch(records, view_type)
        channel_form = odoo_version.view_arch(
            odoo_version.as_user(self.env["celery.job.channel"], self.manager), "form")
        self.assertIn('name="button_pause"', channel_form)
        self.assertIn('name="button_resume"', channel_form)
        in_settings = {self.env.ref("queue_celery.menu_celery_job_channel").id,
                       self.env.ref("queue_celery.menu_celery_job_function").id}
        menus = odoo_version.as_user(self.env["ir.ui.menu"], self.manager)
        self.assertLessEqual(in_settings, set(menus._visible_menu_ids()))
