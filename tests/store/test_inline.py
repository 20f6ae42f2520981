"""celery_run_jobs_inline and trap_jobs where transactions commit: the job's work and its end
commit together with the caller's, a retry waits in the database and the sweeper runs it."""
import contextlib
import uuid

import pytest

import odoo
from harness import count_rows, environment, query
from odoo.addons.queue_celery.core.testing import trap_jobs


@pytest.fixture
def inline():
    previous = odoo.tools.config.get("celery_run_jobs_inline")
    odoo.tools.config["celery_run_jobs_inline"] = True
    yield
    odoo.tools.config["celery_run_jobs_inline"] = previous


def job_row(database, job_id):
    return query(database, "SELECT state, retry_count, worker_hostname FROM celery_job"
                           " WHERE id = %s", (job_id,))[0]


def test_an_inline_job_commits_with_its_caller_or_not_at_all(inline, database):
    marker = uuid.uuid4().hex
    with environment(database) as env:
        kept = env["celery.job"].enqueue("queue.celery.test.record", "make", args=[marker])
        assert kept.state == "done"
    assert job_row(database, kept.id) == ("done", 0, "in-transaction")
    assert count_rows(database, marker) == 1
    with contextlib.suppress(RuntimeError), environment(database) as env:
        lost = env["celery.job"].enqueue("queue.celery.test.record", "make", args=[marker])
        raise RuntimeError("the caller fails after the job ran")
    assert query(database, "SELECT count(*) FROM celery_job WHERE id = %s", (lost.id,)) == [(0,)]
    assert count_rows(database, marker) == 1


def test_an_inline_retry_waits_in_the_database_until_the_sweeper_runs_it(inline, database):
    marker = uuid.uuid4().hex
    with environment(database) as env:
        job = env["celery.job"].enqueue("queue.celery.test.record", "make_after_retries",
                                        args=[marker, 1])
    # Waiting for its retry, with the attempt's run cleared as any retry's is.
    assert job_row(database, job.id) == ("enqueued", 1, None)
    assert count_rows(database, marker + "-attempt") == 0  # the attempt's work rolled back
    with environment(database) as env:
        env["celery.job"]._cron_sweep()
    assert job_row(database, job.id) == ("done", 1, "in-transaction")
    assert (count_rows(database, marker), count_rows(database, marker + "-attempt")) == (1, 1)


def test_perform_leaves_a_retry_enqueued_and_runs_it_when_performed_again(database):
    marker = uuid.uuid4().hex
    with environment(database) as env:
        with trap_jobs(env) as trap:
            job = env["celery.job"].enqueue("queue.celery.test.record", "make_after_retries",
                                            args=[marker, 1])
        trap.perform()
        assert (job.state, job.retry_count) == ("enqueued", 1)
        assert "not yet" in job.exc_info
        trap.perform()
        assert (job.state, job.retry_count) == ("done", 1)
    assert (count_rows(database, marker), count_rows(database, marker + "-attempt")) == (1, 1)
