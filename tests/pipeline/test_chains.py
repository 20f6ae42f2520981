"""Chains, groups and dependencies run by a real worker, on each broker."""
import itertools
import time
import uuid

import pytest

from harness import count_rows, query, wait_for_jobs
from odoo.addons.queue_celery import chain, group

pytestmark = pytest.mark.usefixtures("worker")


def dates(database, ids):
    """[(date_started, date_done)] of the jobs, in the order of ``ids``."""
    found = {row[0]: row[1:] for row in query(
        database, "SELECT id, date_started, date_done FROM celery_job WHERE id IN %s",
        (tuple(ids),))}
    return [found[job_id] for job_id in ids]


def test_a_chain_of_3_runs_in_order(env, database):
    mark = uuid.uuid4().hex
    Records = env["queue.celery.test.record"]
    jobs = chain(*[Records.delayable().make("%s-%d" % (mark, step)) for step in range(3)]).delay()
    env.cr.commit()
    assert set(wait_for_jobs(database, jobs.ids).values()) == {"done"}
    runs = dates(database, jobs.ids)
    for before, after in itertools.pairwise(runs):
        assert before[1] < after[0], "a step started before the one before it ended"


def test_a_group_of_20_then_an_on_done_job_that_starts_after_the_20th_ends(env, database):
    mark = uuid.uuid4().hex
    Records = env["queue.celery.test.record"]
    jobs = group(*[Records.delayable().make("%s-%d" % (mark, part)) for part in range(20)]) \
        .on_done(Records.delayable().make(mark + "-report")).delay("twenty then a report")
    env.cr.commit()
    assert set(wait_for_jobs(database, jobs.ids).values()) == {"done"}
    runs = dates(database, jobs.ids)
    assert runs[-1][0] > max(done for _started, done in runs[:-1])
    (state, jobs_left, done), = query(
        database, "SELECT state, jobs_left, date_done IS NOT NULL FROM celery_job_batch"
                  " WHERE id = %s", (jobs[0].batch_id.id,))
    assert (state, jobs_left, done) == ("ended", 0, True)


def test_a_failing_middle_job_holds_the_rest_and_a_retry_releases_them(env, database):
    mark = uuid.uuid4().hex
    Records = env["queue.celery.test.record"]
    Records.make("blocked-" + mark)
    jobs = chain(Records.delayable().make(mark + "-first"),
                 Records.delayable(max_retries=0).make_unless_blocked(mark),
                 Records.delayable().make(mark + "-last")).delay()
    env.cr.commit()
    assert wait_for_jobs(database, jobs.ids[:2]) == {jobs[0].id: "done", jobs[1].id: "failed"}
    time.sleep(1)
    assert wait_for_jobs(database, jobs.ids[2:], timeout=0) == {jobs[2].id: "waiting"}
    Records.search([("marker", "=", "blocked-" + mark)]).unlink()
    jobs[1].button_retry()
    env.cr.commit()
    assert set(wait_for_jobs(database, jobs.ids).values()) == {"done"}
    assert count_rows(database, mark + "-last") == 1


def test_cancel_cascades_to_what_waits(env, database):
    mark = uuid.uuid4().hex
    Records = env["queue.celery.test.record"]
    jobs = chain(Records.delayable().sleep_then_make(mark + "-first", 1),
                 Records.delayable().make(mark + "-second"),
                 Records.delayable().make(mark + "-third")).delay()
    env.cr.commit()
    jobs[1].button_cancel()
    env.cr.commit()
    assert wait_for_jobs(database, jobs.ids) == {
        jobs[0].id: "done", jobs[1].id: "cancelled", jobs[2].id: "cancelled"}
    time.sleep(0.5)
    assert [count_rows(database, mark + suffix) for suffix in ("-first", "-second", "-third")] \
        == [1, 0, 0]
