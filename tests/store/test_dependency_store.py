"""Dependencies and batches in the job store, on one connection: what each statement leaves."""
import psycopg2
import pytest

from harness import job_values
from odoo.addons.queue_celery.core import jobstore

ROW = job_values(name="dependency test")


def insert(cr, depends_on=(), batch_id=None):
    """A new job of the superuser waiting for ``depends_on``; its id."""
    return jobstore.insert(cr, ROW, 1, depends_on, batch_id)[0]


def states(cr, *job_ids):
    cr.execute("SELECT id, state FROM celery_job WHERE id = ANY(%s)", (list(job_ids),))
    found = dict(cr.fetchall())
    return [found[job_id] for job_id in job_ids]


def run(cr, job_id):
    """Mark the job started, then done as its worker does; the Ended."""
    cr.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job_id,))
    return jobstore.mark_done(cr, job_id, "null", 0.01)


def test_the_last_dependency_done_releases_its_dependent_in_the_same_statement(cursor):
    first, second = insert(cursor), insert(cursor)
    waiting, dispatch = jobstore.insert(cursor, ROW, 1, [first, second])
    assert dispatch is None, "not published while waiting"
    assert states(cursor, waiting) == ["waiting"]
    assert run(cursor, first).released == []
    assert states(cursor, waiting) == ["waiting"]
    ended = run(cursor, second)
    assert [dispatch.id for dispatch in ended.released] == [waiting]
    assert states(cursor, waiting) == ["pending"]
    cursor.execute("SELECT dependencies_left FROM celery_job WHERE id = %s", (waiting,))
    assert cursor.fetchone() == (0,)


def test_a_failure_holds_dependents_and_a_retry_that_succeeds_releases_them(cursor):
    first = insert(cursor)
    waiting = insert(cursor, [first])
    cursor.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (first,))
    jobstore.fail(cursor, first, "boom")
    assert states(cursor, first, waiting) == ["failed", "waiting"]
    assert [job.id for job in jobstore.retry(cursor, [first], 1, "test")] == [first]
    assert states(cursor, first, waiting) == ["pending", "waiting"]
    assert [job.id for job in run(cursor, first).released] == [waiting]


def test_cancel_cascades_to_every_job_waiting_however_far_and_set_done_releases(cursor):
    first = insert(cursor)
    second = insert(cursor, [first])
    third = insert(cursor, [second])
    elsewhere = insert(cursor)
    joined = insert(cursor, [second, elsewhere])
    ended = jobstore.cancel(cursor, [first], 1)
    assert sorted(ended.ids) == sorted([first, second, third, joined])
    assert states(cursor, first, second, third, elsewhere, joined) == [
        "cancelled", "cancelled", "cancelled", "pending", "cancelled"]
    waiting = insert(cursor, [elsewhere])
    released = jobstore.set_done(cursor, [elsewhere], 1).released
    assert [job.id for job in released] == [waiting]


def test_a_dependency_that_is_cancelled_or_missing_is_refused(cursor):
    cancelled = insert(cursor)
    jobstore.cancel(cursor, [cancelled], 1)
    with pytest.raises(jobstore.DependencyError, match="cancelled"):
        insert(cursor, [cancelled])
    with pytest.raises(jobstore.DependencyError, match="No job"):
        insert(cursor, [2 ** 31 - 1])


def test_no_cycle_can_be_stored_a_job_depends_only_on_older_ones(cursor):
    older, newer = insert(cursor), insert(cursor)
    for job_id, depends_on_id in ((older, newer), (older, older)):
        cursor.execute("SAVEPOINT cycle")
        with pytest.raises(psycopg2.errors.CheckViolation):
            cursor.execute("INSERT INTO celery_job_dependency (job_id, depends_on_id)"
                           " VALUES (%s, %s)", (job_id, depends_on_id))
        cursor.execute("ROLLBACK TO SAVEPOINT cycle")


def test_cleanup_keeps_an_old_job_that_a_waiting_job_depends_on(cursor):
    depended_on, alone = insert(cursor), insert(cursor)
    cursor.execute("UPDATE celery_job SET state = 'failed', date_done = now() - interval '90 days'"
                   " WHERE id IN %s", ((depended_on, alone),))
    waiting = insert(cursor, [depended_on])
    while jobstore.delete_ended(cursor, ("failed",), 30, 10000):
        pass
    cursor.execute("SELECT id FROM celery_job WHERE id IN %s", ((depended_on, alone, waiting),))
    assert sorted(row[0] for row in cursor.fetchall()) == [depended_on, waiting]


def test_the_sweeper_releases_a_waiting_job_whose_dependencies_are_all_done(cursor):
    first = insert(cursor)
    stranded = insert(cursor, [first])
    # What a lost release would leave: the dependency done, the job still waiting.
    cursor.execute("UPDATE celery_job SET state = 'done' WHERE id = %s", (first,))
    dispatches, _notices = jobstore.sweep(cursor, 30, 300, 3600)
    assert stranded in [dispatch.id for dispatch in dispatches]
    assert states(cursor, stranded) == ["pending"]


def test_a_batch_of_10000_jobs_counts_right_and_ends_once(cursor):
    batch = jobstore.create_batch(cursor, "ten thousand", 1, 1)
    ids = [insert(cursor, batch_id=batch) for _ in range(10000)]
    jobstore.seal_batch(cursor, batch)
    cursor.execute("UPDATE celery_job SET state = 'started' WHERE id = ANY(%s)", (ids[:7000],))
    for job_id in ids[:6000]:
        jobstore.mark_done(cursor, job_id, "null", 0.01)
    for job_id in ids[6000:7000]:
        jobstore.fail(cursor, job_id, "boom")
    jobstore.cancel(cursor, ids[7000:8000], 1)
    assert jobstore.batch_counts(cursor, [batch])[batch] == {
        "done": 6000, "failed": 1000, "cancelled": 1000, "pending": 2000}
    cursor.execute("SELECT state, jobs_left, date_done FROM celery_job_batch WHERE id = %s",
                   (batch,))
    assert cursor.fetchone() == ("running", 2000, None)
    jobstore.set_done(cursor, ids[8000:9999], 1)
    assert jobstore.set_done(cursor, ids[9999:], 1).ids == [ids[9999]]
    cursor.execute("SELECT state, jobs_left, date_done IS NOT NULL FROM celery_job_batch"
                   " WHERE id = %s", (batch,))
    assert cursor.fetchone() == ("ended", 0, True)
    jobstore.retry(cursor, ids[6000:6001], 1, "test")
    cursor.execute("SELECT state, jobs_left FROM celery_job_batch WHERE id = %s", (batch,))
    assert cursor.fetchone() == ("running", 1)


def test_a_dependent_the_ending_statement_did_not_see_is_released_after_once(store):
    first = insert(store)
    unseen = insert(store, [first])
    # What a REPEATABLE READ end leaves when the dependent came after its snapshot: the
    # worker's release of the job's lock counts it off.
    store.execute("UPDATE celery_job SET state = 'done' WHERE id = %s", (first,))
    assert [job.id for job in jobstore.release(store, first)] == [unseen]
    assert jobstore.release(store, first) == []
    store.execute("SELECT state, dependencies_left FROM celery_job WHERE id = %s", (unseen,))
    assert store.fetchone() == ("pending", 0)


def test_a_job_ended_alone_leaves_its_dependents_to_its_release(store):
    # A worker's job that nothing waited for as it started ends in a statement that only
    # ends it: a dependent that came while it ran is released by the worker's release.
    first = insert(store)
    store.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (first,))
    later = insert(store, [first])
    ended = jobstore.mark_done(store, first, "null", 0.01, alone=True)
    assert (ended.ids, ended.released) == ([first], [])
    assert states(store, first, later) == ["done", "waiting"]
    assert [job.id for job in jobstore.release(store, first)] == [later]
    assert states(store, later) == ["pending"]
