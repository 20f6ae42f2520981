"""The cleanup cron deletes old finished jobs in batches, and nothing else."""


def test_cleanup_deletes_what_it_should_and_nothing_else(env):
    Job = env["celery.job"]
    jobs = {}
    for name, state, days in (("old_done", "done", 8), ("new_done", "done", 6),
                              ("old_cancelled", "cancelled", 8), ("old_failed", "failed", 8),
                              ("very_old_failed", "failed", 31), ("old_pending", "pending", 100),
                              ("old_started", "started", 100), ("old_enqueued", "enqueued", 100)):
        job = Job.enqueue("res.partner", "search", args=[[]], description=name)
        env.cr.execute("UPDATE celery_job SET state = %s, date_done = (now() at time zone 'UTC')"
                       " - make_interval(days => %s) WHERE id = %s", (state, days, job.id))
        jobs[name] = job.id
    env.cr.commit()
    Job._cron_cleanup(batch_size=1)
    env.cr.execute("SELECT name FROM celery_job WHERE id IN %s", (tuple(jobs.values()),))
    assert sorted(name for name, in env.cr.fetchall()) == sorted(
        ["new_done", "old_failed", "old_pending", "old_started", "old_enqueued"])
    env.cr.execute("DELETE FROM celery_job WHERE id IN %s", (tuple(jobs.values()),))
    env.cr.commit()
