"""The job store's statements on one connection, with no worker and no broker."""
import concurrent.futures
import contextlib
import datetime
import json
import time

import psycopg2
import pytest

from harness import bus_message, job_values
from odoo.addons.queue_celery.core import broker, jobstore

HOST, PID = "store-test@host", 4242



def insert(cr, **values):
    """A new pending job of the superuser; (id, Dispatch)."""
    return jobstore.insert(cr, job_values(**values), 1)


def state(cr, job_id):
    cr.execute("SELECT state, retry_count FROM celery_job WHERE id = %s", (job_id,))
    return cr.fetchone()


def locked(cr, job_id):
    cr.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
               " AND objid = %s AND pid = pg_backend_pid()", (jobstore.RUNNING_LOCK, job_id))
    return cr.fetchone()[0] == 1


def test_a_claim_locks_and_starts_the_job_its_message_names(store):
    job_id, dispatch = insert(store)
    claimed = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    assert isinstance(claimed, jobstore.ClaimedJob)
    assert (claimed.id, claimed.method_name, claimed.user_active) == (job_id, "search_count", True)
    assert state(store, job_id) == ("started", 0)
    assert locked(store, job_id)
    jobstore.release(store, job_id)
    assert not locked(store, job_id)


def test_a_stale_task_id_is_dropped(store):
    job_id, dispatch = insert(store)
    dropped = jobstore.claim(store, dispatch.uuid, "an-older-task-id", HOST, PID)
    assert isinstance(dropped, jobstore.Dropped) and "published again" in dropped.reason
    assert state(store, job_id) == ("pending", 0)
    assert not locked(store, job_id)


def test_an_early_message_is_published_again_for_its_eta(store):
    eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=60)
    job_id, dispatch = insert(store, eta=eta)
    dropped = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    assert isinstance(dropped, jobstore.Dropped)
    assert dropped.republish.id == job_id
    assert abs((dropped.republish.eta - eta).total_seconds()) < 2
    assert state(store, job_id) == ("pending", 0) and not locked(store, job_id)


def test_a_message_a_little_early_waits_for_its_eta(store):
    eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=1)
    job_id, dispatch = insert(store, eta=eta)
    claimed = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    assert isinstance(claimed, jobstore.ClaimedJob) and 0 < claimed.early_by <= 1.5


def test_a_started_job_with_a_free_lock_lost_its_worker_and_runs_again(store):
    job_id, dispatch = insert(store)
    store.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job_id,))
    claimed = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    assert isinstance(claimed, jobstore.ClaimedJob) and claimed.retry_count == 1
    assert state(store, job_id) == ("started", 1)


def test_a_dead_workers_job_with_its_retries_used_up_fails(store):
    job_id, dispatch = insert(store, max_retries=2)
    store.execute("UPDATE celery_job SET state = 'started', retry_count = 2 WHERE id = %s",
                  (job_id,))
    dropped = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    assert isinstance(dropped, jobstore.Dropped) and "no retries left" in dropped.reason
    store.execute("SELECT state, exc_info FROM celery_job WHERE id = %s", (job_id,))
    job_state, exc_info = store.fetchone()
    assert job_state == "failed" and "retries are used up" in exc_info
    assert not locked(store, job_id)


def test_a_job_waiting_for_its_message_but_still_locked_is_busy(store, database):
    job_id, dispatch = insert(store)
    store.connection.commit()
    with contextlib.closing(psycopg2.connect(dbname=database)) as other:
        with other.cursor() as other_cr:
            other_cr.execute("SELECT pg_advisory_lock(%s, %s)", (jobstore.RUNNING_LOCK, job_id))
            busy = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
            assert isinstance(busy, jobstore.Busy)
            store.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job_id,))
            dropped = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
            assert "running in another worker" in dropped.reason
    store.execute("DELETE FROM celery_job WHERE id = %s", (job_id,))
    store.connection.commit()


def test_a_claim_that_waited_on_a_concurrent_update_leaves_no_lock_after_release(store, database):
    """A claim that waits for another transaction's update of the row checks its condition
    again on the new row, taking the lock a second time; release lets go of both."""
    job_id, dispatch = insert(store)
    store.connection.commit()
    with contextlib.closing(psycopg2.connect(dbname=database)) as publisher:
        with publisher.cursor() as publisher_cr:
            jobstore.record_dispatch(publisher_cr, [job_id], [], [])  # row locked until commit
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                claimed = pool.submit(jobstore.claim, store, dispatch.uuid, dispatch.task_id,
                                      HOST, PID)
                time.sleep(0.5)
                assert not claimed.done(), "the claim did not wait for the row"
                publisher.commit()
                assert isinstance(claimed.result(timeout=10), jobstore.ClaimedJob)
            jobstore.release(store, job_id)
            publisher_cr.execute("SELECT pg_try_advisory_lock(%s, %s)",
                                 (jobstore.RUNNING_LOCK, job_id))
            assert publisher_cr.fetchone()[0], "the released job is still locked"
            publisher_cr.execute("SELECT pg_advisory_unlock_all()")
    store.execute("DELETE FROM celery_job WHERE id = %s", (job_id,))
    store.connection.commit()


def test_an_unknown_job_is_dropped(store):
    dropped = jobstore.claim(store, "no-such-uuid", "task", HOST, PID)
    assert dropped.reason == "no such job"


def test_transitions_refuse_jobs_not_in_their_states(store):
    job_id, dispatch = insert(store)
    assert jobstore.mark_done(store, job_id, "null", 0.1) is None
    assert jobstore.fail(store, job_id, "boom") is None
    claimed = jobstore.ClaimedJob(job_id, dispatch.uuid, [None] * len(jobstore.CLAIMED_COLUMNS))
    assert jobstore.mark_retry(store, claimed, "boom", seconds=1) is None
    assert jobstore.retry(store, [job_id], 1, "admin") == []
    assert state(store, job_id) == ("pending", 0)
    store.execute("UPDATE celery_job SET state = 'started' WHERE id = %s", (job_id,))
    assert jobstore.cancel(store, [job_id], 1).ids == []
    assert jobstore.set_done(store, [job_id], 1).ids == []
    jobstore.record_dispatch(store, [job_id], [], [])
    assert state(store, job_id) == ("started", 0)
    assert jobstore.mark_done(store, job_id, "42", 0.1).channels == []
    assert state(store, job_id) == ("done", 0)


def test_a_retry_waits_with_a_new_task_id_and_a_history_line(store):
    job_id, dispatch = insert(store)
    claimed = jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    [retry] = jobstore.mark_retry(store, claimed, "Traceback\nValueError: again", seconds=30)
    assert retry.task_id != dispatch.task_id and retry.eta > datetime.datetime.utcnow()
    store.execute("SELECT state, retry_count, retry_history FROM celery_job WHERE id = %s",
                  (job_id,))
    job_state, retry_count, history = store.fetchone()
    assert (job_state, retry_count) == ("enqueued", 1)
    assert history.endswith("attempt 1 failed, retry planned: ValueError: again")


def test_identity_keys_are_unique_per_user_among_active_jobs(store):
    first, dispatch = insert(store, identity_key="k")
    assert insert(store, identity_key="k") == (first, None)
    store.execute("SELECT id FROM res_users WHERE id != 1 ORDER BY id LIMIT 1")
    other_user = store.fetchone()[0]
    other, other_dispatch = insert(store, identity_key="k", user_id=other_user)
    assert other != first and other_dispatch
    assert jobstore.cancel(store, [first], 1).ids == [first]
    again, _dispatch = insert(store, identity_key="k")
    assert again != first
    with pytest.raises(jobstore.IdentityKeyTaken) as taken:
        jobstore.retry(store, [first], 1, "admin")
    assert taken.value.holders == [(first, "k", again)]


def test_publishing_checks_what_the_transaction_committed(store):
    kept, kept_dispatch = insert(store)
    store.execute("SAVEPOINT enqueue")
    _gone, gone_dispatch = insert(store)
    store.execute("ROLLBACK TO SAVEPOINT enqueue")
    assert jobstore.committed(store, [kept_dispatch, gone_dispatch]) == [kept_dispatch]


def test_the_sweeper_publishes_forgotten_jobs_and_recovers_dead_workers(store):
    pending, _dispatch = insert(store)
    dead, _dispatch = insert(store, max_retries=0)
    store.execute("UPDATE celery_job SET create_date = create_date - interval '1 hour'"
                  " WHERE id = %s", (pending,))
    store.execute("UPDATE celery_job SET state = 'started', date_started ="
                  " now() at time zone 'UTC' - interval '1 hour' WHERE id = %s", (dead,))
    dispatches, notices = jobstore.sweep(store, grace=30, window=300, republish_after=3600)
    assert [job.id for job in dispatches] == [pending]
    assert notices == []
    assert state(store, dead)[0] == "failed"


def test_the_sweeper_asks_channel_admission_of_held_jobs_only(store):
    """A backlog of enqueued jobs costs the sweeper no admission each (10 s for 200,000)."""
    waiting = [insert(store)[0] for _ in range(3)]
    store.execute("UPDATE celery_job SET state = 'enqueued', date_enqueued ="
                  " now() at time zone 'UTC' WHERE id = ANY(%s)", (waiting,))
    store.execute("SET LOCAL track_functions = 'all'")
    jobstore.sweep(store, grace=30, window=300, republish_after=3600)
    store.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
                  " WHERE funcname = 'celery_job_channel_refusal'")
    assert store.fetchone()[0] == 0


def test_a_job_end_writes_its_users_bus_notice_when_their_client_is_connected(store):
    job_id, dispatch = insert(store)
    jobstore.claim(store, dispatch.uuid, dispatch.task_id, HOST, PID)
    store.execute("INSERT INTO bus_presence (user_id, last_poll, last_presence, status)"
                  " VALUES (1, now() at time zone 'UTC', now() at time zone 'UTC', 'online')"
                  # Odoo 18's unique index on user_id is partial: the WHERE lets it match.
                  " ON CONFLICT (user_id) WHERE user_id IS NOT NULL DO UPDATE"
                  " SET last_poll = EXCLUDED.last_poll, status = EXCLUDED.status")
    channels = jobstore.mark_done(store, job_id, "null", 0.1).channels
    store.execute("SELECT partner_id FROM res_users WHERE id = 1")
    assert len(channels) == 1 and json.loads(channels[0])[1:] == ["res.partner", store.fetchone()[0]]
    store.execute("SELECT message FROM bus_bus WHERE channel = %s ORDER BY id DESC LIMIT 1",
                  (channels[0],))
    assert json.loads(store.fetchone()[0]) == bus_message(
        "celery.job", {"id": job_id, "name": "store test", "state": "done"})


class _LentCursor:
    """A cursor object of its own on a shared connection, as Odoo's test cursors are."""

    def __init__(self, cr):
        self._cr = cr

    def __getattr__(self, name):
        return getattr(self._cr, name)


def test_cursors_sharing_a_connection_keep_plans_of_their_own(store):
    for cr in (_LentCursor(store), _LentCursor(store)):
        jobstore.keep_plans(cr)
        jobstore._execute(cr, "SELECT %s::int + 1", [1])
        assert cr.fetchone() == (2,)
    store.execute("SELECT count(*) FROM pg_prepared_statements")
    assert store.fetchone() == (2,)


def test_the_job_table_is_vacuumed_once_one_percent_of_its_rows_changed(store):
    store.execute("SELECT reloptions FROM pg_class WHERE oid = 'celery_job'::regclass")
    assert set(broker.QUEUE_TABLE_OPTIONS) <= set(store.fetchone()[0])
