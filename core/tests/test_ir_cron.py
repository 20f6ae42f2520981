from odoo.exceptions import AccessError, ValidationError
from odoo.tests import common

from ... import odoo_version
from ...core.testing import trap_jobs


class TestCronAsJob(common.TransactionCase):
    """A scheduled action with "Run as a job": its runs enqueue it instead of running it."""

    def setUp(self):
        super().setUp()
        Users = self.env["res.users"].with_context(no_reset_password=True)
        internal = self.env.ref("base.group_user")
        self.cron_user = Users.create({"name": "Cron admin", "login": "cron_admin_jobs", "groups_id": [
            (6, 0, [internal.id, self.env.ref("base.group_system").id,
                    self.env.ref("base.group_partner_manager").id])]})
        self.plain = Users.create({"name": "Plain", "login": "plain_cron_jobs",
                                   "groups_id": [(6, 0, [internal.id])]})
        self.partner = self.env["res.partner"].create({"name": "Cron target"})
        self.cron = self.env["ir.cron"].create({
            "name": "Tag the partner", "model_id": self.env.ref("base.model_res_partner").id,
            "state": "code", "code": "model.browse(%d).write({'ref': 'ran'})" % self.partner.id,
            "user_id": self.cron_user.id, "interval_number": 1, "interval_type": "days",
            "celery_run_as_job": True, "celery_queue": "low", "celery_time_limit": 120,
            "celery_max_retries": 2})

    def test_a_run_enqueues_the_action_as_a_job_of_the_crons_user_instead_of_running_it(self):
        with trap_jobs(self.env) as trap:
            odoo_version.run_cron_callback(self.cron)
        job = trap.assert_enqueued(self.cron, "_celery_run_cron_job", args=[], kwargs={},
                                   queue="low", user=self.cron_user, time_limit=120,
                                   max_retries=2, identity_key="ir.cron-%d" % self.cron.id,
                                   description="Scheduled action: Tag the partner")
        self.assertEqual(self.partner.ref, False)
        trap.perform()
        self.assertEqual(job.state, "done")
        self.assertEqual((self.partner.ref, self.partner.write_uid), ("ran", self.cron_user))

    def test_a_run_while_the_crons_job_is_active_enqueues_no_other(self):
        with trap_jobs(self.env) as trap:
            odoo_version.run_cron_callback(self.cron)
            odoo_version.run_cron_callback(self.cron)
            trap.assert_count(1)
            trap.perform()
            odoo_version.run_cron_callback(self.cron)
        trap.assert_count(2)

    def test_run_manually_enqueues_it_too_as_the_crons_user(self):
        with trap_jobs(self.env) as trap:
            self.cron.method_direct_trigger()
        trap.assert_enqueued(self.cron, "_celery_run_cron_job", user=self.cron_user, queue="low")
        self.assertEqual(self.partner.ref, False)

    def test_without_the_checkbox_the_cron_runs_its_action_itself(self):
        self.cron.celery_run_as_job = False
        with trap_jobs(self.env) as trap:
            odoo_version.run_cron_callback(self.cron)
        trap.assert_count(0)
        self.assertEqual(self.partner.ref, "ran")

    def test_only_administrators_set_it_and_only_for_a_cron_of_an_administrator(self):
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.cron, self.plain).write({"celery_run_as_job": False})
        with self.assertRaises(AccessError):
            odoo_version.as_user(self.cron, self.plain).read(["celery_queue"])
        with self.assertRaisesRegex(ValidationError, "must be an administrator or the superuser"):
            self.cron.write({"user_id": self.plain.id})
        with self.assertRaisesRegex(ValidationError, "max_retries"):
            self.cron.write({"celery_max_retries": -1})
        with self.assertRaisesRegex(ValidationError, "time_limit"):
            self.cron.write({"celery_max_retries": 2, "celery_time_limit": -5})
        with self.assertRaisesRegex(AccessError, "Private methods"):
            self.env["celery.job"].enqueue("ir.cron", "_celery_run_cron_job",
                                           record_ids=self.cron.ids)

    def test_the_cron_form_shows_the_checkbox_and_the_queue(self):
        arch = odoo_version.view_arch(self.env["ir.cron"], "form")
        for field in ("celery_run_as_job", "celery_queue", "celery_time_limit",
                      "celery_max_retries"):
            self.assertIn('name="%s"' % field, arch)
