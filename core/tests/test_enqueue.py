import datetime
import json

from odoo.exceptions import AccessError, UserError
from odoo.tests import common

from ... import odoo_version
from ...core.canvas import chain, enqueue_many
from ...core.testing import trap_jobs


class TestEnqueue(common.TransactionCase):

    def setUp(self):
        super().setUp()
        self.Job = self.env["celery.job"]
        self.partner = self.env["res.partner"].create({"name": "Job target"})

    def test_enqueue_writes_a_pending_job(self):
        with trap_jobs(self.env) as trap:
            job = self.Job.enqueue(self.partner, "write", args=[{"comment": "x"}], queue="high",
                                   priority=1, max_retries=2, description="Comment")
        self.assertEqual(trap.assert_enqueued(
            self.partner, "write", args=[{"comment": "x"}], kwargs={}, queue="high", priority=1,
            max_retries=2, description="Comment", user=self.env.user, state="pending"), job)
        self.assertEqual(job.state, "pending")
        self.assertEqual((job.model_name, job.method_name), ("res.partner", "write"))
        self.assertEqual(job.record_ids, "[%d]" % self.partner.id)
        self.assertEqual(job.args, '[{"comment":"x"}]')
        self.assertEqual((job.queue, job.priority, job.max_retries), ("high", 1, 2))
        self.assertEqual(job.user_id, self.env.user)
        self.assertEqual(job.company_id, odoo_version.user_company(self.env))
        self.assertEqual(job.name, "Comment")
        self.assertTrue(job.uuid and job.celery_task_id)

    def test_the_context_is_saved_less_what_json_cannot_carry(self):
        job = self.partner.with_context(lang="en_US", tz="UTC", record=self.partner,
                                        handle=object()).with_delay().toggle_active()
        context = json.loads(job.context)
        self.assertEqual((context["lang"], context["tz"]), ("en_US", "UTC"))
        self.assertIn("record", context)  # a recordset is carried
        self.assertNotIn("handle", context)

    def test_with_delay_names_the_job_after_the_method_and_allows_private_methods(self):
        job = self.partner.with_delay(countdown=60)._compute_display_name()
        self.assertEqual(job.method_name, "_compute_display_name")
        self.assertGreater(str(job.eta), datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S"))
        job = self.partner.with_delay().toggle_active()
        self.assertEqual(job.name, type(self.partner).toggle_active.__doc__.strip().split("\n")[0])

    def test_bad_input_is_refused_and_writes_nothing(self):
        with trap_jobs(self.env) as trap:
            self._enqueue_bad_input()
        trap.assert_count(0)

    def _enqueue_bad_input(self):
        nested = []
        for _level in range(500):
            nested = [nested]
        for call, message in (
                (lambda: self.Job.enqueue("no.such.model", "search"), "Unknown model"),
                (lambda: self.Job.enqueue("res.partner", "no_such_method"), "has no method"),
                (lambda: self.Job.enqueue("res.partner", "name"), "has no method"),
                (lambda: self.Job.enqueue("res.partner", "search", args=[object()]), r"args\[0\]"),
                (lambda: self.Job.enqueue("res.partner", "search", kwargs={"x": {1}}), r"kwargs\['x'\]"),
                (lambda: self.Job.enqueue("res.partner", "search", queue="urgent"), "Unknown queue"),
                (lambda: self.Job.enqueue("res.partner", "search", priority=10), "priority must be an integer"),
                (lambda: self.Job.enqueue("res.partner", "search", max_retries=-1), "max_retries"),
                (lambda: self.Job.enqueue("res.partner", "search", eta="tomorrow"), "not a date and time"),
                (lambda: self.Job.enqueue("res.partner", "search", eta="2030-01-01 00:00:00",
                                          countdown=5), "not both"),
                (lambda: self.Job.enqueue("res.partner", "read", record_ids=["1"]), "record_ids"),
                (lambda: self.Job.enqueue("res.partner", "search", args="abc"), "args must be a list"),
                (lambda: self.Job.enqueue("res.partner", "search", kwargs=[1]), "kwargs must be a dict"),
                (lambda: self.Job.enqueue("res.partner", 42), "method_name must be"),
                (lambda: self.Job.enqueue("res.partner", "search", max_retries=2 ** 40), "max_retries"),
                (lambda: self.Job.enqueue("res.partner", "search", time_limit=2 ** 40), "time_limit"),
                (lambda: self.Job.enqueue("res.partner", "search", countdown=1e300), "countdown"),
                (lambda: self.Job.enqueue("res.partner", "search", countdown=-1e12), "countdown"),
                (lambda: self.Job.enqueue("res.partner", "search", eta="2030-01-01 00:00:00junk"),
                 "not a date and time"),
                (lambda: self.Job.enqueue("res.partner", "search", args=[nested]), "nested more than"),
        ):
            with self.assertRaisesRegex(UserError, message):
                call()
        for private in ("_compute_display_name", "init"):
            with self.assertRaisesRegex(AccessError, "Private methods"):
                self.Job.enqueue("res.partner", private)

    def test_eta_with_an_offset_is_converted_to_utc(self):
        job = self.Job.enqueue("res.partner", "search", args=[[]], eta="2030-01-01T12:00:00+02:00")
        self.assertEqual(str(job.eta), "2030-01-01 10:00:00")

    def test_the_context_counts_against_the_size_limit(self):
        with self.assertRaisesRegex(UserError, "celery_max_arguments_size"):
            self.Job.with_context(big="x" * (6 * 1024 * 1024)).enqueue("res.partner", "search")

    def test_identity_key_returns_the_waiting_job(self):
        with trap_jobs(self.env) as trap:
            first = self.partner.with_delay(identity_key="sync-42").write({"comment": "a"})
            second = self.partner.with_delay(identity_key="sync-42").write({"comment": "b"})
        self.assertEqual(first, second)
        trap.assert_count(1)
        trap.assert_enqueued(self.partner, "write", args=[{"comment": "a"}], identity_key="sync-42")
        first.button_cancel()
        third = self.partner.with_delay(identity_key="sync-42").write({"comment": "c"})
        self.assertNotEqual(third, first)

    def test_a_transaction_enqueuing_jobs_in_a_loop_plans_its_insert_once(self):
        jobs = [self.partner.with_delay().write({"comment": str(n)}) for n in range(4)]
        self.assertEqual([job.args for job in jobs],
                         ['[{"comment":"%d"}]' % n for n in range(4)])
        self.assertEqual(len(set(job.uuid for job in jobs)), 4)
        self.env.cr.execute("SELECT count(*) FROM pg_prepared_statements"
                            " WHERE statement LIKE %s", ("PREPARE queue_celery_% AS INSERT INTO"
                                                         " celery_job %",))
        self.assertEqual(self.env.cr.fetchone()[0], 1)

    def test_enqueue_many_writes_every_call_in_order_with_its_options(self):
        other = self.env["res.partner"].create({"name": "Other target"})
        with trap_jobs(self.env) as trap:
            jobs = enqueue_many([
                self.partner.delayable(queue="high", priority=1).write({"ref": "a"}),
                other.delayable(description="Second")._compute_display_name(),
                self.partner.delayable(countdown=60).toggle_active()])
        self.assertEqual(trap.jobs, jobs)
        self.assertEqual(jobs.mapped("method_name"),
                         ["write", "_compute_display_name", "toggle_active"])
        trap.assert_enqueued(self.partner, "write", args=[{"ref": "a"}], queue="high",
                             priority=1, user=self.env.user, state="pending")
        trap.assert_enqueued(other, "_compute_display_name", description="Second")
        self.assertGreater(str(jobs[2].eta),
                           datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S"))
        self.assertEqual(len(set(jobs.mapped("uuid") + jobs.mapped("celery_task_id"))), 6)
        trap.perform()
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertEqual(self.partner.ref, "a")

    def test_enqueue_many_refuses_what_with_delay_refuses_and_writes_nothing(self):
        partner = self.partner
        with trap_jobs(self.env) as trap:
            for calls, message in (
                    ([partner.delayable().write({}), partner.delayable(queue="urgent").write({})],
                     "Unknown queue"),
                    ([partner.delayable().write({"x": {1}})], r"args\[0\]"),
                    ([partner.delayable(eta="tomorrow").write({})], "not a date and time"),
                    ([partner.delayable().no_such_method()], "has no method"),
                    ([], "one or more delayables"),
                    ([partner], "one or more delayables"),
                    ([partner.delayable().write({}), partner.with_delay().write({})],
                     "one or more delayables"),
            ):
                with self.assertRaisesRegex(UserError, message):
                    enqueue_many(calls)
            chain(partner.delayable().write({}), partner.delayable().write({}))
            linked = partner.delayable().write({})
            chain(linked, partner.delayable().write({}))
            with self.assertRaisesRegex(UserError, "independent calls"):
                enqueue_many([linked])
            trap.assert_count(1)  # the with_delay() above, alone
            done = partner.delayable().write({})
            enqueue_many([done])
            with self.assertRaisesRegex(UserError, "Already enqueued"):
                enqueue_many([done])
        trap.assert_count(2)

    def test_enqueue_many_returns_the_active_job_of_an_identity_key_taken(self):
        with trap_jobs(self.env) as trap:
            first = self.partner.with_delay(identity_key="sync-1").write({"comment": "a"})
            jobs = enqueue_many([
                self.partner.delayable(identity_key="sync-1").write({"comment": "b"}),
                self.partner.delayable(identity_key="sync-2").write({"comment": "c"}),
                self.partner.delayable(identity_key="sync-2").write({"comment": "d"}),
                self.partner.delayable().write({"comment": "e"})])
        self.assertEqual(jobs.ids[0], first.id)
        self.assertEqual(jobs.ids[1], jobs.ids[2])
        trap.assert_count(3)
        trap.assert_enqueued(self.partner, "write", args=[{"comment": "c"}], identity_key="sync-2")

    def test_buttons_move_jobs_between_states(self):
        job = self.partner.with_delay().write({"comment": "x"})
        job.button_cancel()
        self.assertEqual(job.state, "cancelled")
        self.assertTrue(job.date_done)
        job.button_retry()
        self.assertEqual(job.state, "pending")
        self.assertFalse(job.date_done)
        job.button_done()
        self.assertEqual(job.state, "done")
        job.button_cancel()  # a done job cannot be cancelled
        self.assertEqual(job.state, "done")
