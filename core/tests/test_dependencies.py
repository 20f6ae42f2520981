"""Jobs that wait for other jobs, chains, groups and batches, in one rolled-back transaction."""
from odoo.addons.queue_celery import chain, group
from odoo.addons.queue_celery.core import jobstore
from odoo.exceptions import UserError
from odoo.tests import common
from odoo.tools import mute_logger

from ... import odoo_version


class TestDependencies(common.TransactionCase):

    def setUp(self):
        super().setUp()
        self.partners = self.env["res.partner"].search([], limit=1)

    def step(self, name):
        return self.partners.delayable(description=name).read(["name"])

    def states(self, jobs):
        self.env.cr.execute("SELECT state FROM celery_job WHERE id = ANY(%s) ORDER BY id",
                            (jobs.ids,))
        return [state for state, in self.env.cr.fetchall()]

    def run_job(self, job):
        """End a job done as a worker does (its claim is plain SQL here); the released."""
        self.env.cr.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job.id,))
        ended = jobstore.mark_done(self.env.cr, job.id, "null", 0.1)
        self.invalidate()
        return ended.released

    def invalidate(self):
        for model in ("celery.job", "celery.job.batch"):
            odoo_version.invalidate(self.env[model].search([]))

    def test_a_job_waits_for_its_dependencies_and_the_form_links_both_ways(self):
        first = self.env["celery.job"].enqueue(self.partners, "read")
        done = self.env["celery.job"].enqueue(self.partners, "read")
        self.env.cr.execute("UPDATE celery_job SET state = 'done' WHERE id = %s", (done.id,))
        waiting = self.env["celery.job"].enqueue(self.partners, "read",
                                                 depends_on=[first.id, done.id])
        self.assertEqual((waiting.state, waiting.dependencies_left), ("waiting", 1))
        self.assertEqual(waiting.depends_on_ids, first | done)
        self.assertEqual(first.dependent_ids, waiting)
        not_waiting = self.env["celery.job"].enqueue(self.partners, "read", depends_on=[done.id])
        self.assertEqual(not_waiting.state, "pending")

    def test_a_dependency_that_is_missing_cancelled_or_not_an_id_is_refused(self):
        cancelled = self.env["celery.job"].enqueue(self.partners, "read")
        cancelled.button_cancel()
        for depends_on, message in (([cancelled.id], "cancelled"), (["1"], "depends_on"),
                                    ([2 ** 31 - 1], "")):
            with self.assertRaisesRegex(Exception, message):
                self.env["celery.job"].enqueue(self.partners, "read", depends_on=depends_on)

    def test_a_chain_runs_in_order_and_done_releases_the_next_in_the_same_statement(self):
        jobs = chain(self.step("a"), self.step("b"), self.step("c")).delay()
        self.assertEqual(self.states(jobs), ["pending", "waiting", "waiting"])
        released = self.run_job(jobs[0])
        self.assertEqual([dispatch.id for dispatch in released], [jobs[1].id])
        self.assertEqual(self.states(jobs), ["done", "pending", "waiting"])

    def test_a_failure_holds_the_rest_and_a_retry_that_succeeds_releases_them(self):
        jobs = chain(self.step("a"), self.step("b")).delay()
        self.env.cr.execute("UPDATE celery_job SET state = 'started' WHERE id = %s",
                            (jobs[0].id,))
        jobstore.fail(self.env.cr, jobs[0].id, "boom")
        self.assertEqual(self.states(jobs), ["failed", "waiting"])
        jobs[0].button_retry()
        self.assertEqual(self.states(jobs), ["pending", "waiting"])
        self.run_job(jobs[0])
        self.assertEqual(self.states(jobs), ["done", "pending"])

    def test_cancel_cascades_and_set_done_releases(self):
        jobs = chain(self.step("a"), self.step("b"), self.step("c")).delay()
        jobs[0].button_cancel()
        self.assertEqual(self.states(jobs), ["cancelled"] * 3)
        jobs[1:].button_retry()
        self.assertEqual(self.states(jobs), ["cancelled", "waiting", "waiting"])
        jobs[0].button_done()
        self.assertEqual(self.states(jobs), ["done", "pending", "waiting"])

    def test_a_group_with_an_on_done_job_is_one_batch(self):
        parts = [self.step("part %d" % number) for number in range(3)]
        jobs = group(*parts).on_done(self.step("report")).delay("Import")
        batch = jobs[0].batch_id
        self.assertEqual((batch.name, batch.state, batch.jobs_left, batch.job_count),
                         ("Import", "running", 4, 4))
        self.assertEqual(jobs[3].depends_on_ids, jobs[:3])
        self.assertEqual((batch.queued_count, batch.waiting_count), (3, 1))
        for job in jobs[:3]:
            self.run_job(job)
        self.assertEqual(self.states(jobs[3]), ["pending"])
        self.run_job(jobs[3])
        self.assertEqual((batch.state, batch.jobs_left, batch.done_count, batch.percent_done),
                         ("ended", 0, 4, 100.0))
        self.assertTrue(batch.date_done)

    def test_a_cycle_or_a_call_enqueued_twice_is_refused(self):
        first, second = self.step("a"), self.step("b")
        chain(first, second)
        with self.assertRaisesRegex(UserError, "cycle"):
            chain(second, first).delay()
        alone = self.step("alone")
        alone.delay()
        with self.assertRaisesRegex(UserError, "Already enqueued"):
            alone.delay()

    @mute_logger("odoo.sql_db")
    def test_the_database_refuses_a_dependency_on_a_newer_job(self):
        older = self.env["celery.job"].enqueue(self.partners, "read")
        newer = self.env["celery.job"].enqueue(self.partners, "read")
        with self.assertRaisesRegex(Exception, "celery_job_dependency_older_only"), \
                self.env.cr.savepoint():
            self.env.cr.execute("INSERT INTO celery_job_dependency (job_id, depends_on_id)"
                                " VALUES (%s, %s)", (older.id, newer.id))
