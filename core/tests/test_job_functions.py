from unittest.mock import patch

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import common

from ... import odoo_version
from .. import jobstore
from ..job_options import pattern_delay


class TestJobFunctions(common.TransactionCase):

    def setUp(self):
        super().setUp()
        self.Function = self.env["celery.job.function"]
        self.partner = self.env["res.partner"].create({"name": "Function target"})
        self.channel = self.env["celery.job.channel"].create({"name": "root.functions",
                                                              "queue": "high"})

    def function(self, method_name):
        return self.Function.search([("model_name", "=", "res.partner"),
                                     ("method_name", "=", method_name)])

    def test_the_first_job_of_a_method_creates_its_function_once(self):
        self.partner.with_delay().toggle_active()
        self.partner.with_delay().toggle_active()
        function = self.function("toggle_active")
        self.assertEqual(len(function), 1)
        self.assertEqual((function.name, function.max_retries, function.channel_id.id),
                         ("res.partner.toggle_active", -1, False))

    def test_function_defaults_apply_and_enqueue_options_win(self):
        self.partner.with_delay().write({})
        self.function("write").write({"channel_id": self.channel.id, "priority": "2",
                                      "max_retries": 7, "time_limit": 60})
        job = self.partner.with_delay().write({})
        self.assertEqual((job.channel_id, job.queue, job.priority, job.max_retries,
                          job.time_limit), (self.channel, "high", 2, 7, 60))
        job = self.partner.with_delay(channel="root", queue="low", priority=8, max_retries=0,
                                      time_limit=5).write({})
        self.assertEqual((job.channel_id.name, job.queue, job.priority, job.max_retries,
                          job.time_limit), ("root", "low", 8, 0, 5))

    def test_a_retry_pattern_is_a_literal_checked_on_write(self):
        self.partner.with_delay().write({})
        function = self.function("write")
        function.retry_pattern = "{1: 10, 5: 60, 10: 600}"
        self.assertEqual([pattern_delay(function.retry_pattern, count) for count in (0, 3, 4, 20)],
                         [10, 10, 60, 600])
        self.assertIsNone(pattern_delay(False, 3))
        for bad in ("__import__('os')", "{0: 1}", "{1: -5}", "[1, 2]", "{'a': 1}"):
            with self.assertRaises(ValidationError, msg=bad):
                with self.env.cr.savepoint():
                    function.retry_pattern = bad
                    odoo_version.flush(self.env)

    def test_a_function_declared_in_data_is_found_by_enqueue(self):
        self.Function.create({"model_name": "res.partner", "method_name": "copy",
                              "channel_id": self.channel.id})
        self.assertEqual(self.partner.with_delay().copy().channel_id, self.channel)

    def test_a_function_whose_creation_a_savepoint_undid_is_created_again(self):
        with self.assertRaises(UserError), self.env.cr.savepoint():
            self.partner.with_delay().toggle_active()
            raise UserError("undone")
        self.assertFalse(self.function("toggle_active"))
        self.partner.with_delay().toggle_active()
        self.assertEqual(len(self.function("toggle_active")), 1)


class TestFunctionDefaultsCache(common.TransactionCase):
    """Each process keeps the functions it read until one changes (its own tests: on Odoo 18
    a class shares one transaction, and a function created by enqueue turns the cache off
    until it ends)."""

    def setUp(self):
        super().setUp()
        self.partner = self.env["res.partner"].create({"name": "Cached function target"})
        self.channel = self.env["celery.job.channel"].create({"name": "root.cached"})
        self.function = self.env["celery.job.function"].create({
            "model_name": "res.partner", "method_name": "copy", "priority": "3",
            "channel_id": self.channel.id})

    def test_enqueue_reads_a_function_once_until_it_changes(self):
        with patch.object(jobstore, "function_defaults", wraps=jobstore.function_defaults) as read:
            self.assertEqual([self.partner.with_delay().copy().priority for _ in range(3)],
                             [3, 3, 3])
            self.assertEqual(read.call_count, 1)
            self.function.priority = "4"
            self.assertEqual(self.partner.with_delay().copy().priority, 4)
            self.assertEqual(read.call_count, 2)

    def test_a_renamed_channel_keeps_its_functions_jobs(self):
        self.partner.with_delay().copy()
        self.channel.name = "root.renamed"
        self.assertEqual(self.partner.with_delay().copy().channel_id, self.channel)


class TestRelatedAction(common.TransactionCase):

    def setUp(self):
        super().setUp()
        Users = self.env["res.users"].with_context(no_reset_password=True)
        self.company = odoo_version.user_company(self.env)
        self.other_company = self.env["res.company"].create({"name": "Other jobs company"})
        self.manager = Users.create({
            "name": "Related manager", "login": "related_manager",
            "company_id": self.company.id, "company_ids": [(6, 0, [self.company.id])],
            "groups_id": [(6, 0, [self.env.ref("base.group_user").id,
                                  self.env.ref("queue_celery.group_celery_job_manager").id])]})
        Partner = self.env["res.partner"]
        self.partners = Partner.create({"name": "Related 0"}) | Partner.create({"name": "Related 1"})

    def test_the_related_button_opens_the_job_records(self):
        job = self.partners[0].with_delay().write({})
        action = odoo_version.as_user(job, self.manager).button_related()
        self.assertEqual((action["res_model"], action["res_id"]), ("res.partner", self.partners[0].id))
        job = self.partners.with_delay().write({})
        action = odoo_version.as_user(job, self.manager).button_related()
        self.assertEqual(action["domain"], [("id", "in", self.partners.ids)])

    def test_a_related_action_is_a_method_written_as_one(self):
        self.partners[1].with_delay().write({})
        function = self.env["celery.job.function"].search([("model_name", "=", "res.partner"),
                                                           ("method_name", "=", "write")])
        for method in ("unlink", "open_commercial_entity", "toggle_active"):
            with self.assertRaises(ValidationError, msg=method):
                with self.env.cr.savepoint():
                    function.related_action = method
                    odoo_version.flush(self.env)
        function.related_action = "related_action_nowhere"
        job = self.partners[1].with_delay().write({})
        with self.assertRaisesRegex(UserError, "not a method"):
            odoo_version.as_user(job, self.manager).button_related()

    def test_records_of_another_company_are_refused(self):
        # Batches are readable by managers of their company only, on every version.
        foreign = jobstore.create_batch(self.env.cr, "Foreign", self.env.uid,
                                        self.other_company.id)
        job = self.env["celery.job"].enqueue("celery.job.batch", "read", args=[["name"]],
                                             record_ids=[foreign])
        self.assertEqual(job.company_id, self.company)
        with self.assertRaises(AccessError):
            odoo_version.as_user(job, self.manager).button_related()
        own = jobstore.create_batch(self.env.cr, "Own", self.env.uid, self.company.id)
        job = self.env["celery.job"].enqueue("celery.job.batch", "read", args=[["name"]],
                                             record_ids=[own])
        self.assertEqual(odoo_version.as_user(job, self.manager).button_related()["res_id"], own)
