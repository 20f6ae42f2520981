import datetime

from odoo.tests import common
from odoo.tools import config

from ... import odoo_version
from ...core.testing import trap_jobs


class TestTrapJobs(common.TransactionCase):
    """core/testing.py's trap_jobs, as a test of code that enqueues jobs uses it."""

    def setUp(self):
        super().setUp()
        self.partner = self.env["res.partner"].create({"name": "Job target"})
        self.alice = self.env["res.users"].with_context(no_reset_password=True).create({
            "name": "Alice", "login": "alice_trap",
            "groups_id": [(6, 0, [self.env.ref("base.group_user").id,
                                  self.env.ref("base.group_partner_manager").id])]})

    def test_trapped_jobs_are_written_but_never_published(self):
        before = self.partner.with_delay().write({"ref": "before"})
        with trap_jobs(self.env) as trap:
            job = self.partner.with_delay(queue="high").write({"ref": "trapped"})
        after = self.partner.with_delay().write({"ref": "after"})
        self.assertEqual(trap.jobs, job)
        # What waits to be published once the test's transaction commits.
        published = [dispatch.id for dispatch in self.env.cr._celery_dispatches]
        self.assertIn(before.id, published)
        self.assertIn(after.id, published)
        self.assertNotIn(job.id, published)
        self.assertEqual((job.state, job.queue), ("pending", "high"))
        self.assertEqual(before.state, "pending")

    def test_assert_enqueued_matches_the_call_and_its_options(self):
        with trap_jobs(self.env) as trap:
            job = odoo_version.as_user(self.partner, self.alice).with_delay(
                queue="low", priority=2, description="Set ref").write({"ref": "x"})
            self.env["celery.job"].enqueue("res.partner", "search_count", args=[[]],
                                           eta="2030-01-01T12:00:00+02:00")
        self.assertEqual(trap.assert_enqueued(self.partner, "write", args=[{"ref": "x"}],
                                              queue="low", priority=2, description="Set ref",
                                              user=self.alice, state="pending"), job)
        trap.assert_enqueued("res.partner", "search_count", kwargs={},
                             eta=datetime.datetime(2030, 1, 1, 10))
        trap.assert_enqueued("res.partner", "search_count", eta="2030-01-01 10:00:00")
        trap.assert_count(2)
        with self.assertRaises(AssertionError) as failure:
            trap.assert_enqueued(self.partner, "write", args=[{"ref": "y"}])
        message = str(failure.exception)
        self.assertIn("No job enqueued calls res.partner(%d,).write({'ref': 'y'})"
                      % self.partner.id, message)
        self.assertIn("1. res.partner(%d,).write({'ref': 'x'}) queue='low' priority=2 "
                      "user='alice_trap' state='pending'" % self.partner.id, message)
        self.assertIn("2. res.partner().search_count([]) queue='default'", message)
        self.assertIn("eta=2030-01-01 10:00:00", message)
        for call in (lambda: trap.assert_enqueued(self.partner, "write", queue="high"),
                     lambda: trap.assert_enqueued(self.partner, "unlink"),
                     lambda: trap.assert_enqueued("res.users", "search_count"),
                     lambda: trap.assert_enqueued(self.partner, "write", user=self.env.user),
                     lambda: trap.assert_enqueued("res.partner", "search_count",
                                                  eta="2030-01-01 12:00:00")):
            with self.assertRaises(AssertionError):
                call()
        with self.assertRaisesRegex(AssertionError, "2 job\\(s\\) enqueued, not 1"):
            trap.assert_count(1)
        trap.clear()
        trap.assert_count(0)

    def test_perform_runs_each_job_as_its_user_in_the_test_transaction(self):
        self.env["res.partner"].create({"name": "Archived trap partner", "active": False})
        with trap_jobs(self.env) as trap:
            job = odoo_version.as_user(self.partner, self.alice).with_delay().write(
                {"ref": "performed"})
            count = self.env["res.partner"].with_context(active_test=False).with_delay(
            ).search_count([("name", "=", "Archived trap partner")])
        self.assertEqual(self.partner.ref, False)
        self.assertEqual(trap.perform(), job | count)
        self.assertEqual((job.state, job.result, job.worker_hostname),
                         ("done", "true", "in-transaction"))
        self.assertEqual((count.state, count.result), ("done", "1"))  # its context came along
        self.assertEqual(self.partner.ref, "performed")
        self.assertEqual(self.partner.write_uid, self.alice)

    def test_perform_fails_a_job_alone_and_runs_the_jobs_waiting_for_others_after_them(self):
        self.partner.write({"name": "Kept"})
        with trap_jobs(self.env) as trap:
            failing = self.partner.with_delay().write({"parent_id": self.partner.id})
            first = self.partner.with_delay().write({"ref": "first"})
            second = self.env["celery.job"].enqueue(self.partner, "write",
                                                    args=[{"comment": "second"}],
                                                    depends_on=[first.id])
        self.assertEqual(second.state, "waiting")
        trap.perform()
        self.assertEqual(failing.state, "failed")
        self.assertIn("recursive Partner hierarchies", failing.exc_info)
        self.assertEqual((first.state, second.state), ("done", "done"))
        self.assertLessEqual(first.date_done, second.date_started)
        self.assertEqual((self.partner.name, self.partner.ref, self.partner.parent_id.id),
                         ("Kept", "first", False))
        self.assertIn("second", self.partner.comment)

    def test_jobs_that_performed_jobs_enqueue_in_the_block_are_trapped_and_performed_next(self):
        with trap_jobs(self.env) as trap:
            outer = self.env["celery.job"].enqueue(
                "celery.job", "enqueue", args=["res.partner", "write"],
                kwargs={"record_ids": self.partner.ids, "args": [{"ref": "nested"}]})
            trap.perform()
            self.assertEqual(outer.state, "done")
            inner = trap.assert_enqueued(self.partner, "write", args=[{"ref": "nested"}],
                                         state="pending")
            self.assertEqual(self.partner.ref, False)
            trap.perform()
        self.assertEqual((inner.state, self.partner.ref), ("done", "nested"))
        trap.assert_count(2)


class TestRunJobsInline(common.TransactionCase):
    """odoo.conf's celery_run_jobs_inline: each job runs at once where it is enqueued."""

    def setUp(self):
        super().setUp()
        self.partner = self.env["res.partner"].create({"name": "Job target"})
        previous = config.get("celery_run_jobs_inline")
        config["celery_run_jobs_inline"] = True
        self.addCleanup(config.__setitem__, "celery_run_jobs_inline", previous)

    def test_a_job_is_done_when_enqueue_returns(self):
        job = self.partner.with_delay().write({"ref": "inline"})
        self.assertEqual((job.state, job.worker_hostname), ("done", "in-transaction"))
        self.assertEqual(self.partner.ref, "inline")
        self.assertNotIn(job.id, [dispatch.id for dispatch in
                                  getattr(self.env.cr, "_celery_dispatches", ())])

    def test_a_failing_job_fails_alone_and_keeps_the_callers_work(self):
        self.partner.write({"name": "Kept"})
        job = self.partner.with_delay().write({"parent_id": self.partner.id})
        self.assertEqual(job.state, "failed")
        self.assertIn("recursive Partner hierarchies", job.exc_info)
        self.partner.write({"ref": "still usable"})
        self.assertEqual((self.partner.name, self.partner.ref, self.partner.parent_id.id),
                         ("Kept", "still usable", False))

    def test_a_trap_takes_the_jobs_first(self):
        with trap_jobs(self.env) as trap:
            job = self.partner.with_delay().write({"ref": "trapped"})
        self.assertEqual(job.state, "pending")
        trap.perform()
        self.assertEqual((job.state, self.partner.ref), ("done", "trapped"))
