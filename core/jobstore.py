"""The job store: every statement that creates, moves, ends or deletes a job, named once.

It knows nothing of the ORM: each function takes a database cursor and runs its statements
in that cursor's transaction. **The store never commits**: its caller does (on the worker's
control cursor, which is in autocommit mode, each statement commits alone). Every
transition names the states it moves a job from in its ``WHERE`` clause, so a job that was
moved on meanwhile is left as it is, and the function says so: it returns what it moved
and logs a transition that found nothing to move.
"""
import collections
import contextlib
import datetime
import itertools
import logging
import random
import re
import uuid

import psycopg2.extensions

from odoo import SUPERUSER_ID

from .. import odoo_version
from . import broker, settings

_logger = logging.getLogger(__name__)

WAITING, PENDING, ENQUEUED, STARTED = "waiting", "pending", "enqueued", "started"
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
STATES = (WAITING, PENDING, ENQUEUED, STARTED, DONE, FAILED, CANCELLED)
QUEUED = (PENDING, ENQUEUED)         # waiting for a worker
RUNNABLE = QUEUED + (STARTED,)       # a worker may hold it
ACTIVE = (WAITING,) + RUNNABLE       # not ended: identity keys are unique among these
ENDED = (DONE, FAILED, CANCELLED)
CANCELLABLE = (WAITING,) + QUEUED

DEFAULT_MAX_RETRIES = 5
# Advisory lock class (first key) of running jobs; the second key is the job id. A worker
# holds it on its connection while the job runs: a started job without it lost its worker.
RUNNING_LOCK = 0x51C1
# Advisory lock class of channels; the second key is the channel id. A claim holds those of
# its channel's limited path (capacity, sequential, rate limit) while it decides, so that
# every worker on every host counts what the others started.
CHANNEL_LOCK = 0x51C2
# Jobs a channel edit or a resume publishes again at most; the sweeper takes the others.
RELEASE_MAX = 1000
# A message this many seconds early waits for its eta; an earlier one is published again.
EARLY_TOLERANCE = 2.0
HISTORY_MAX_CHARS = 10000
# The channel of stop requests: a NOTIFY whose payload is "<job id> <task id of its run>".
STOP_CHANNEL = "celery_job_stop"

NOW = "(statement_timestamp() at time zone 'UTC')"
_ACTIVE_SQL = "(%s)" % ", ".join("'%s'" % state for state in ACTIVE)

# What publishing needs of a job; eta is a naive UTC datetime or None.
Dispatch = collections.namedtuple("Dispatch", "id uuid queue priority eta task_id")

INSERT_COLUMNS = ("uuid", "name", "model_name", "method_name", "record_ids", "args", "kwargs",
                  "context", "user_id", "company_id", "queue", "priority", "eta", "max_retries",
                  "identity_key", "time_limit", "channel_id")

# What running a claimed job needs, read as the job is marked started.
CLAIMED_COLUMNS = ("user_id", "model_name", "method_name", "record_ids", "args", "kwargs",
                   "context", "company_id", "retry_count", "max_retries", "queue", "priority",
                   "time_limit", "retry_pattern", "user_active", "ends_others")


def _dispatch(row):
    """A Dispatch from a row (id, uuid, queue, priority, eta, celery_task_id); Odoo's
    cursors may read a timestamp as text."""
    eta = row[4]
    if isinstance(eta, str):
        eta = datetime.datetime.fromisoformat(eta)
    return Dispatch(row[0], row[1], row[2], row[3], eta, row[5])


def new_task_id():
    return str(uuid.uuid4())


# ---------------------------------------------------------------------- statements planned once

def keep_plans(cr):
    """Have ``cr`` run the statements of a job's run (its claim, its end, its release) as
    prepared statements of its session, each planned once instead of at every job: for
    the cursors a worker keeps from job to job, and an enqueuing cursor's INSERTs after its
    first (``insert``). Their names are new to this process, so a connection that Odoo's
    pool lends to another cursor never meets one twice."""
    cr._celery_plans = {}  # statement: its name


_PLACEHOLDER = re.compile("%([%s])")
_PLAN_NAMES = itertools.count(1)


def _execute(cr, sql, params):
    """Execute ``sql`` (psycopg2 placeholders) with ``params`` on ``cr``: as a prepared
    statement where ``cr`` keeps plans (``keep_plans``), else as it is. Its parameters are
    typed by where they stand, so each must stand where PostgreSQL can tell its type (a
    cast otherwise); a list is an array (``= ANY(%s)``), never a tuple (``IN %s``)."""
    plans = getattr(cr, "_celery_plans", None)
    if plans is None:
        cr.execute(sql, params)
        return
    name = plans.get(sql)
    if name is None:
        name = "queue_celery_%d" % next(_PLAN_NAMES)
        number = itertools.count(1)
        cr.execute("PREPARE %s AS %s" % (name, _PLACEHOLDER.sub(
            lambda match: "%" if match.group(1) == "%" else "$%d" % next(number), sql)))
        plans[sql] = name
    cr.execute("EXECUTE %s(%s)" % (name, ", ".join(["%s"] * len(params))), params)


def create_schema(cr):
    """Indexes, options and the trigger the store relies on (the ORM creates the tables)."""
    cr.execute("ALTER TABLE celery_job SET (%s)" % ", ".join(broker.QUEUE_TABLE_OPTIONS))
    # Identity keys are unique per user among active jobs, enforced by the database itself
    # (the index's name changes with what "active" covers: ON CONFLICT names its predicate).
    cr.execute("DROP INDEX IF EXISTS celery_job_identity_key_waiting")
    cr.execute("DROP INDEX IF EXISTS celery_job_identity_key_active")
    cr.execute("CREATE UNIQUE INDEX IF NOT EXISTS celery_job_identity_key_unfinished"
               " ON celery_job (user_id, identity_key) WHERE identity_key IS NOT NULL"
               " AND state IN " + _ACTIVE_SQL)
    # The sweeper scans active jobs only; the cleanup cron ended ones.
    cr.execute("DROP INDEX IF EXISTS celery_job_waiting")
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_unfinished ON celery_job"
               " (state, date_enqueued) WHERE state IN " + _ACTIVE_SQL)
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_ended ON celery_job (state, date_done)"
               " WHERE state IN ('done', 'failed', 'cancelled')")
    # The metrics: jobs counted by an index-only scan of an index whose repeated keys
    # PostgreSQL stores once (7 MB for a million jobs), retries summed over retried jobs only.
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_counted_by_%s ON celery_job (%s)"
               % ("_".join(COUNTED_BY), ", ".join(COUNTED_BY)))
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_retried ON celery_job (queue, retry_count)"
               " WHERE retry_count > 0")
    # A batch's jobs, among the few jobs that have a batch.
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_in_batch ON celery_job (batch_id)"
               " WHERE batch_id IS NOT NULL")
    # A job depends only on jobs that existed before it (ids grow), so no cycle can ever be
    # stored: the database refuses one outright.
    cr.execute("ALTER TABLE celery_job_dependency DROP CONSTRAINT IF EXISTS"
               " celery_job_dependency_older_only")
    cr.execute("ALTER TABLE celery_job_dependency ADD CONSTRAINT celery_job_dependency_older_only"
               " CHECK (depends_on_id < job_id)")
    # Each edge is counted off its dependent once, by whichever statement sees it first.
    cr.execute("ALTER TABLE celery_job_dependency ADD COLUMN IF NOT EXISTS counted boolean"
               " NOT NULL DEFAULT false")
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_dependency_depends_on"
               " ON celery_job_dependency (depends_on_id)")
    # A stop request of a running job is a row of its own: the job's transaction updates the
    # job's row as it ends, and would fail at REPEATABLE READ on a row updated meanwhile. It
    # names the run it stops (its task id): a request that outlived its run stops no other.
    cr.execute("CREATE TABLE IF NOT EXISTS celery_job_stop (job_id integer PRIMARY KEY"
               " REFERENCES celery_job ON DELETE CASCADE, task_id varchar NOT NULL,"
               " user_id integer REFERENCES res_users ON DELETE SET NULL,"
               " date timestamp NOT NULL)")
    # Each failure writes a traceback (the same text when a job fails the same way again):
    # this keeps a line of each, newest first, with no row per attempt and no cost on enqueue.
    cr.execute(r"""
        CREATE OR REPLACE FUNCTION celery_job_retry_history() RETURNS trigger AS $$
        BEGIN
            NEW.retry_history := left(
                to_char(now() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC  attempt '
                || (OLD.retry_count + 1) || ' '
                || CASE NEW.state WHEN 'failed' THEN 'failed' WHEN 'cancelled' THEN 'stopped'
                   ELSE 'failed, retry planned' END
                || ': ' || coalesce(substring(NEW.exc_info from '([^\n]+)\s*$'), '?')
                || coalesce(E'\n' || OLD.retry_history, ''), %s);
            RETURN NEW;
        END $$ LANGUAGE plpgsql;
        DROP TRIGGER IF EXISTS celery_job_retry_history ON celery_job;
        CREATE TRIGGER celery_job_retry_history BEFORE UPDATE OF exc_info ON celery_job
            FOR EACH ROW WHEN (NEW.exc_info IS NOT NULL)
            EXECUTE PROCEDURE celery_job_retry_history();
    """, (HISTORY_MAX_CHARS,))
    _create_channel_schema(cr)


# ---------------------------------------------------------------------- channels

# A channel's path: the channel and every parent, root first (names are dotted paths).
_IN_PATH = "(%(a)s.name = %(c)s.name OR left(%(c)s.name, length(%(a)s.name) + 1) = %(a)s.name || '.')"
_LIMITED = "(%(a)s.capacity > 0 OR %(a)s.sequential OR %(a)s.rate_limit > 0)"


def _create_channel_schema(cr):
    """The SQL that admits a job into its channel's path, in PostgreSQL alone.

    Each function is VOLATILE PL/pgSQL: under READ COMMITTED each of its statements sees
    what other transactions committed before it ran, so that what follows a lock counts
    every job the other workers started while it waited.
    """
    # A held job (``held``): enqueued, its message consumed, until a job of its path ends,
    # the channel is edited or resumed, or the sweeper finds it admissible. A flag of its
    # own: publishing records ``date_enqueued`` after a worker may already have held it.
    cr.execute("CREATE INDEX IF NOT EXISTS celery_job_channel_unended ON celery_job"
               " (channel_id, state, id) WHERE channel_id IS NOT NULL"
               " AND state IN ('waiting', 'pending', 'enqueued', 'started', 'failed')")
    # The rate limit's clock, apart from the channel rows managers edit.
    cr.execute("CREATE TABLE IF NOT EXISTS celery_job_channel_clock"
               " (channel_id integer PRIMARY KEY, next_start_at timestamp NOT NULL)")
    # The start a rate limit reserved for a job it refused: the clocks of its path moved
    # past it, and its message comes back for it (its eta). Not a field: no RPC reaches it.
    cr.execute("CREATE TABLE IF NOT EXISTS celery_job_channel_slot"
               " (job_id integer PRIMARY KEY REFERENCES celery_job (id) ON DELETE CASCADE,"
               " start_at timestamp NOT NULL)")
    path = _IN_PATH % {"a": "a", "c": "c"}
    limited = _LIMITED % {"a": "a"}
    # Its answer was (refusal, wait) before starts were reserved: a return type that
    # CREATE OR REPLACE cannot change.
    cr.execute("DROP FUNCTION IF EXISTS celery_job_channel_admit(integer)")
    cr.execute("""
        CREATE OR REPLACE FUNCTION celery_job_channel_lock(channels integer[]) RETURNS void AS $$
        -- The locks of the limited channels on the paths of channels, in name order (one
        -- order for every caller: no deadlock), held until the transaction ends.
        DECLARE channel record;
        BEGIN
            FOR channel IN SELECT DISTINCT a.id, a.name FROM celery_job_channel c
                    JOIN celery_job_channel a ON """ + path + """
                    WHERE c.id = ANY(channels) AND """ + limited + """ ORDER BY a.name LOOP
                PERFORM pg_advisory_xact_lock(%(lock)s, channel.id);
            END LOOP;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_refusal(job integer, OUT refusal text,
                                                              OUT wait float) AS $$
        -- Why the job may not start now (refusal NULL: it may), and for a rate limit the
        -- seconds until it may; the job itself is not counted. A job whose reserved start
        -- is due (a message up to the claim's early tolerance early) passes the rate limits,
        -- while that start is still its eta (a retry's eta is its own).
        DECLARE
            channel record;
            busy integer;
            reserved boolean := EXISTS (SELECT 1 FROM celery_job_channel_slot s
                JOIN celery_job j ON j.id = s.job_id AND j.eta = s.start_at
                WHERE s.job_id = job AND s.start_at <= (clock_timestamp() at time zone 'UTC')
                    + make_interval(secs => %(early)s));
        BEGIN
            FOR channel IN SELECT a.id, a.name, a.capacity, a.sequential, a.rate_limit, a.paused,
                    extract(epoch from k.next_start_at - (clock_timestamp() at time zone 'UTC'))
                        AS wait
                    FROM celery_job j JOIN celery_job_channel c ON c.id = j.channel_id
                    JOIN celery_job_channel a ON """ + path + """
                    LEFT JOIN celery_job_channel_clock k ON k.channel_id = a.id
                    WHERE j.id = job ORDER BY a.name LOOP
                IF channel.paused THEN
                    refusal := format('channel %%s is paused', channel.name);
                    RETURN;
                END IF;
                IF channel.capacity > 0 OR channel.sequential THEN
                    SELECT count(*) INTO busy FROM celery_job s
                        JOIN celery_job_channel c ON c.id = s.channel_id
                        WHERE s.state = 'started' AND s.id <> job AND """ + (
        _IN_PATH % {"a": "channel", "c": "c"}) + """;
                    IF channel.capacity > 0 AND busy >= channel.capacity THEN
                        refusal := format('channel %%s runs %%s jobs, its capacity', channel.name,
                                          busy);
                        RETURN;
                    END IF;
                END IF;
                IF channel.sequential AND (busy > 0 OR EXISTS (SELECT 1 FROM celery_job o
                        JOIN celery_job_channel c ON c.id = o.channel_id WHERE o.id < job
                        AND o.state IN ('waiting', 'pending', 'enqueued', 'started', 'failed')
                        AND """ + (_IN_PATH % {"a": "channel", "c": "c"}) + """)) THEN
                    refusal := format('channel %%s is sequential and an older job of it has'
                                      ' not ended', channel.name);
                    RETURN;
                END IF;
                IF channel.rate_limit > 0 AND channel.wait > 0 AND NOT reserved THEN
                    refusal := format('channel %%s starts %%s jobs a second at most',
                                      channel.name, channel.rate_limit);
                    wait := channel.wait;
                    RETURN;
                END IF;
            END LOOP;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_tick(channel integer,
                start_at timestamp) RETURNS void AS $$
        -- Count a start at start_at against the rate limits of the channel's path: each
        -- clock moves one interval past it, or past the start it was waiting for.
        BEGIN
            INSERT INTO celery_job_channel_clock (channel_id, next_start_at)
                SELECT a.id, greatest(start_at, coalesce(k.next_start_at, '-infinity'))
                    + make_interval(secs => 1.0 / a.rate_limit)
                FROM celery_job_channel c JOIN celery_job_channel a ON """ + path + """
                LEFT JOIN celery_job_channel_clock k ON k.channel_id = a.id
                WHERE c.id = channel AND a.rate_limit > 0
                ON CONFLICT (channel_id) DO UPDATE SET next_start_at = EXCLUDED.next_start_at;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_take(job integer) RETURNS boolean AS $$
        -- Whether the job may start now, under the locks of its channel's path, held until
        -- the transaction ends: the caller marks it started in that transaction (a claim's
        -- UPDATE calls it in its condition). A start advances its path's rate clocks, but
        -- for a job that starts in the slot reserved for it (counted when reserved).
        DECLARE channel integer;
        BEGIN
            SELECT j.channel_id INTO channel FROM celery_job j WHERE j.id = job;
            PERFORM celery_job_channel_lock(ARRAY[channel]);
            IF (celery_job_channel_refusal(job)).refusal IS NOT NULL THEN
                RETURN false;
            END IF;
            DELETE FROM celery_job_channel_slot s USING celery_job j
                WHERE s.job_id = job AND j.id = job AND j.eta = s.start_at;
            IF NOT FOUND THEN
                PERFORM celery_job_channel_tick(channel, clock_timestamp() at time zone 'UTC');
            END IF;
            RETURN true;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_reserve(job integer) RETURNS timestamp
            AS $$
        -- Reserve the job the first start every rate limit of its path allows after the
        -- starts taken or reserved before, under the locks its take took: each refused job
        -- of a burst gets its own later start, not one they all come back for. It is the
        -- job's eta (its message's, and the sweeper's if that message is lost).
        DECLARE
            channel integer;
            start_at timestamp;
        BEGIN
            SELECT j.channel_id, max(greatest(clock_timestamp() at time zone 'UTC',
                                              coalesce(k.next_start_at, '-infinity')))
                INTO channel, start_at
                FROM celery_job j JOIN celery_job_channel c ON c.id = j.channel_id
                JOIN celery_job_channel a ON """ + path + """
                LEFT JOIN celery_job_channel_clock k ON k.channel_id = a.id
                WHERE j.id = job AND a.rate_limit > 0 GROUP BY j.channel_id;
            PERFORM celery_job_channel_tick(channel, start_at);
            INSERT INTO celery_job_channel_slot (job_id, start_at) VALUES (job, start_at)
                ON CONFLICT (job_id) DO UPDATE SET start_at = EXCLUDED.start_at;
            UPDATE celery_job SET eta = start_at WHERE id = job;
            RETURN start_at;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_admit(job integer, OUT refusal text,
                                                            OUT start_at timestamp) AS $$
        -- Start the job (marked started: counted from now on) or hold it (its message is
        -- consumed) in one transaction, under the locks of its channel's path; a job
        -- refused by a rate limit is neither: it gets its own start (start_at), for which
        -- the caller publishes it again. A held job loses the start it had reserved.
        DECLARE
            state text;
            wait float;
        BEGIN
            SELECT j.state INTO state FROM celery_job j WHERE j.id = job FOR UPDATE;
            IF state IS NULL OR state NOT IN ('pending', 'enqueued') THEN
                refusal := format('it is %%s', coalesce(state, 'deleted'));
                RETURN;
            END IF;
            IF celery_job_channel_take(job) THEN
                UPDATE celery_job SET state = 'started', held = false, date_started = %(now)s
                    WHERE id = job;
                RETURN;
            END IF;
            SELECT r.refusal, r.wait INTO refusal, wait FROM celery_job_channel_refusal(job) r;
            IF wait IS NULL THEN
                DELETE FROM celery_job_channel_slot WHERE job_id = job;
                UPDATE celery_job SET state = 'enqueued', held = true WHERE id = job;
            ELSE
                start_at := celery_job_channel_reserve(job);
            END IF;
        END $$ LANGUAGE plpgsql;

        CREATE OR REPLACE FUNCTION celery_job_channel_release(channels integer[],
                how_many integer, whole boolean)
            RETURNS TABLE (job_id integer, job_uuid varchar, job_queue varchar,
                           job_priority integer, job_eta timestamp, task_id varchar) AS $$
        -- Make pending (to publish) up to how_many held jobs that may start now, or once a
        -- rate limit lets them (their claim puts them off until then): of the
        -- subtrees of channels (whole), or of the topmost limited channel on each of their
        -- paths (a job of theirs ended). Locks as an admission does, so that a job held
        -- meanwhile is seen here, or its admission sees the slot this frees.
        BEGIN
            PERFORM celery_job_channel_lock(channels);
            RETURN QUERY WITH scope AS (
                    SELECT c.name FROM celery_job_channel c WHERE whole AND c.id = ANY(channels)
                    UNION (SELECT DISTINCT ON (c.id) a.name FROM celery_job_channel c
                    JOIN celery_job_channel a ON """ + path + """
                    WHERE NOT whole AND c.id = ANY(channels) AND """ + limited + """
                    ORDER BY c.id, a.name)),
                candidates AS (SELECT h.id FROM celery_job h
                    JOIN celery_job_channel c ON c.id = h.channel_id
                    JOIN scope a ON """ + path + """
                    WHERE h.state = 'enqueued' AND h.held AND h.channel_id IS NOT NULL
                    AND (h.eta IS NULL OR h.eta <= %(now)s)
                    ORDER BY h.priority, h.id),
                admissible AS (SELECT h.id FROM candidates h,
                    LATERAL celery_job_channel_refusal(h.id) r
                    WHERE r.refusal IS NULL OR r.wait IS NOT NULL LIMIT how_many)
                UPDATE celery_job j SET state = 'pending', held = false, write_date = %(now)s,
                    celery_task_id = md5(random()::text || j.id::text)
                FROM (SELECT id FROM celery_job WHERE id IN (SELECT id FROM admissible)
                      FOR UPDATE SKIP LOCKED) held
                WHERE j.id = held.id AND j.state = 'enqueued' AND j.held
                RETURNING j.id, j.uuid, j.queue, j.priority, j.eta, j.celery_task_id;
        END $$ LANGUAGE plpgsql;
    """, {"lock": CHANNEL_LOCK, "now": psycopg2.extensions.AsIs(NOW), "early": EARLY_TOLERANCE})


def channel(cr, name):
    """(id, queue) of the channel named ``name``, or None."""
    cr.execute("SELECT id, queue FROM celery_job_channel WHERE name = %s", (name,))
    return cr.fetchone()


def function_defaults(cr, model_name, method_name, create=True):
    """The defaults the job function of ``model_name.method_name`` sets, by enqueue's option
    names (``channel`` is a name); None when it is missing: it is created then (``create``),
    with none, whoever enqueues."""
    cr.execute("SELECT c.name, f.priority, f.max_retries, f.time_limit FROM celery_job_function f"
               " LEFT JOIN celery_job_channel c ON c.id = f.channel_id"
               " WHERE f.model_name = %s AND f.method_name = %s", (model_name, method_name))
    row = cr.fetchone()
    if row is None:
        if not create:
            return None
        cr.execute("INSERT INTO celery_job_function (name, model_name, method_name, max_retries,"
                   " time_limit, create_uid, write_uid, create_date, write_date)"
                   " VALUES (%s, %s, %s, -1, 0, %s, %s, " + NOW + ", " + NOW + ")"
                   " ON CONFLICT (model_name, method_name) DO NOTHING",
                   ("%s.%s" % (model_name, method_name), model_name, method_name,
                    SUPERUSER_ID, SUPERUSER_ID))
        return None
    channel_name, priority, max_retries, time_limit = row
    return {name: value for name, value in (
        ("channel", channel_name), ("priority", int(priority) if priority else None),
        ("max_retries", max_retries if max_retries >= 0 else None),
        ("time_limit", time_limit or None)) if value is not None}


def admit(cr, job_id):
    """Start the job in its channel's path, or hold it: ``(refusal, the start a rate limit
    reserved for it)``, ``(None, None)`` once it is started. ``cr`` is in autocommit mode
    (the admission is one statement's transaction)."""
    cr.execute("SELECT refusal, start_at FROM celery_job_channel_admit(%s)", (job_id,))
    return cr.fetchone()


def release_held(cr, channel_ids, how_many=RELEASE_MAX, whole=False):
    """Make pending up to ``how_many`` held jobs that may start now (see
    ``celery_job_channel_release``); their Dispatches, to publish once ``cr`` commits."""
    cr.execute("SELECT * FROM celery_job_channel_release(%s, %s, %s)",
               (list(channel_ids), how_many, whole))
    return [_dispatch(row) for row in cr.fetchall()]


# ---------------------------------------------------------------------- enqueue and publish

class DependencyError(ValueError):
    """A job cannot depend on these jobs; the message says why."""


def _dependencies_left(cr, depends_on):
    """How many of the jobs ``depends_on`` are not done yet, read as they are committed.

    Their rows are share-locked until ``cr`` commits: a dependency ending meanwhile locks
    its row first (``_end_jobs``), so either this reads it done, or it counts the new job
    off once this commits (in its ending statement, or after its commit when that
    statement's snapshot predates the new job: its worker's ``release``).
    """
    cr.execute("SELECT id, state FROM celery_job WHERE id = ANY(%s) FOR KEY SHARE",
               (list(depends_on),))
    states = dict(cr.fetchall())
    missing = sorted(set(depends_on) - set(states))
    if missing:
        raise DependencyError("No job %s to depend on." % ", ".join(map(str, missing)))
    cancelled = sorted(job_id for job_id, state in states.items() if state == CANCELLED)
    if cancelled:
        raise DependencyError("Job %s is cancelled: a job waiting for it would never run "
                              "(retry it first)." % ", ".join(map(str, cancelled)))
    return sum(state != DONE for state in states.values())


_INSERT = (
    "INSERT INTO celery_job (%s, state, dependencies_left, batch_id, retry_count,"
    " celery_task_id, create_uid, write_uid, create_date, write_date)"
    " VALUES (%s, %%s, %%s, %%s, 0, %%s, %%s, %%s, %s, %s)"
    " ON CONFLICT (user_id, identity_key) WHERE identity_key IS NOT NULL"
    " AND state IN %s DO NOTHING RETURNING id"
    % (", ".join(INSERT_COLUMNS), ", ".join(["%s"] * len(INSERT_COLUMNS)), NOW, NOW,
       _ACTIVE_SQL))


def insert(cr, values, uid, depends_on=(), batch_id=None):
    """Write a new job (``values``: INSERT_COLUMNS by name) as user ``uid``: ``pending``,
    or ``waiting`` until every job of ``depends_on`` (ids of existing jobs) is done.

    Returns ``(job id, Dispatch)`` (Dispatch None for a waiting job), or ``(id of the
    caller's active job with the same identity key, None)``: nothing is written then.
    Raises DependencyError when a dependency does not exist or is cancelled.
    """
    job_uuid, task_id = str(uuid.uuid4()), new_task_id()
    left = _dependencies_left(cr, depends_on) if depends_on else 0
    row = dict(values, uuid=job_uuid)
    params = [row[column] for column in INSERT_COLUMNS] + [
        WAITING if left else PENDING, left, batch_id, task_id, uid, uid]
    if getattr(cr, "_celery_plans", None) is None and getattr(cr, "_celery_inserted", False):
        keep_plans(cr)  # a cursor enqueuing jobs in a loop (the first PREPARE costs a round trip)
    with contextlib.suppress(AttributeError):  # a plain psycopg2 cursor: never prepared
        cr._celery_inserted = True
    _execute(cr, _INSERT, params)
    inserted = cr.fetchone()
    if inserted:
        if depends_on:
            cr.execute("INSERT INTO celery_job_dependency (job_id, depends_on_id)"
                       " SELECT %s, unnest(%s::int[])", (inserted[0], sorted(set(depends_on))))
        if left:
            return inserted[0], None
        return inserted[0], Dispatch(inserted[0], job_uuid, row["queue"], row["priority"],
                                     row["eta"], task_id)
    cr.execute("SELECT id FROM celery_job WHERE user_id = %s AND identity_key = %s"
               " AND state IN " + _ACTIVE_SQL, (row["user_id"], row["identity_key"]))
    return cr.fetchone()[0], None


def insert_many(cr, rows):
    """Write new jobs (``rows``: values as ``insert`` takes them, each as its own
    ``user_id``), ``pending``, in one statement; no dependencies, no batch.

    Returns ``(job id, Dispatch)`` of each row, in order; as ``insert``, a row whose user
    has an active job with its identity key gets that job's id and no Dispatch, and so does
    a row repeating the identity key of a row before it.
    """
    uuids = [str(uuid.uuid4()) for _row in rows]
    task_ids = [new_task_id() for _row in rows]
    params = []
    for row, job_uuid, task_id in zip(rows, uuids, task_ids, strict=True):
        row = dict(row, uuid=job_uuid)
        params += [row[column] for column in INSERT_COLUMNS] + [task_id, row["user_id"],
                                                                row["user_id"]]
    placeholders = "(%s, '%s', 0, 0, %%s, %%s, %%s, %s, %s)" % (
        ", ".join(["%s"] * len(INSERT_COLUMNS)), PENDING, NOW, NOW)
    cr.execute(
        "INSERT INTO celery_job (%s, state, dependencies_left, retry_count, celery_task_id,"
        " create_uid, write_uid, create_date, write_date) VALUES %s"
        " ON CONFLICT (user_id, identity_key) WHERE identity_key IS NOT NULL"
        " AND state IN %s DO NOTHING RETURNING uuid, id"
        % (", ".join(INSERT_COLUMNS), ", ".join([placeholders] * len(rows)), _ACTIVE_SQL),
        params)
    inserted = dict(cr.fetchall())
    taken = {(row["user_id"], row["identity_key"]) for row, job_uuid in zip(rows, uuids, strict=True)
             if job_uuid not in inserted}
    active = {}
    if taken:
        cr.execute("SELECT user_id, identity_key, id FROM celery_job WHERE state IN "
                   + _ACTIVE_SQL + " AND (user_id, identity_key) IN %s", (tuple(taken),))
        active = {(user_id, key): job_id for user_id, key, job_id in cr.fetchall()}
    return [(inserted[job_uuid], Dispatch(inserted[job_uuid], job_uuid, row["queue"],
                                          row["priority"], row["eta"], task_id))
            if job_uuid in inserted else (active[row["user_id"], row["identity_key"]], None)
            for row, job_uuid, task_id in zip(rows, uuids, task_ids, strict=True)]


def committed(cr, dispatches_):
    """Those of ``dispatches_`` that ``cr`` sees committed as they are (a job written in a
    savepoint that was rolled back is not; nor one published again since)."""
    cr.execute("SELECT id, celery_task_id FROM celery_job WHERE id = ANY(%s)"
               " AND state IN ('pending', 'enqueued')", ([job.id for job in dispatches_],))
    current = dict(cr.fetchall())
    return [job for job in dispatches_ if current.get(job.id) == job.task_id]


def record_dispatch(cr, published, deferred, failed):
    """Record what publishing did: handed over, waiting for its eta in the database, or
    left to the sweeper. Jobs a worker moved on meanwhile are left as they are."""
    if published:
        cr.execute("UPDATE celery_job SET state = 'enqueued', date_enqueued = " + NOW +
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (published,))
    if deferred:
        cr.execute("UPDATE celery_job SET state = 'enqueued', date_enqueued = NULL"
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (deferred,))
    if failed:
        cr.execute("UPDATE celery_job SET date_enqueued = NULL"
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (failed,))


# ---------------------------------------------------------------------- a worker's claim

def _mark_started(extra_assignments, condition):
    """The UPDATE that marks a job started by a worker (parameters: hostname, pid, then
    those of ``extra_assignments`` and ``condition``), returning ``CLAIMED_COLUMNS``."""
    return ("UPDATE celery_job j SET state = 'started', date_started = " + NOW + ","
            " worker_hostname = %s, worker_pid = %s, date_done = NULL, held = false"
            + extra_assignments +
            " WHERE " + condition + " RETURNING " + ", ".join(CLAIMED_COLUMNS[:-3]) +
            ", (SELECT retry_pattern FROM celery_job_function f WHERE f.model_name = j.model_name"
            " AND f.method_name = j.method_name)" +
            # The superuser runs jobs even where it is an archived technical user (Odoo 18).
            ", (SELECT active OR id = %d FROM res_users WHERE id = j.user_id)," % SUPERUSER_ID +
            " j.batch_id IS NOT NULL OR j.channel_id IS NOT NULL"
            " OR EXISTS (SELECT 1 FROM celery_job_dependency WHERE depends_on_id = j.id)")


class ClaimedJob:
    """A job a worker has locked and marked started: what running it needs.

    ``early_by``: seconds before its eta (a message Celery's timer handed over a little
    early); the runner waits that long before running it. ``ends_others``: its end counts
    off rows that other jobs' ends update too (its batch, the jobs waiting for it, the jobs
    its channel holds).
    """

    __slots__ = ("id", "uuid", "early_by") + CLAIMED_COLUMNS

    def __init__(self, job_id, job_uuid, row, early_by=0.0):
        self.id, self.uuid, self.early_by = job_id, job_uuid, early_by
        for name, value in zip(CLAIMED_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.time_limit = self.time_limit or settings.option("job_time_limit")


class Dropped(collections.namedtuple("Dropped", "reason republish notices")):
    """A message that must not run its job: why, the Dispatch to publish again (or None)
    and the bus channels to wake (a job ended by the claim)."""


class Busy:
    """A job waiting for the message, still locked by the worker that ran it before."""


def claim(cr, job_uuid, task_id, hostname, pid):
    """Lock the job and mark it started: a ClaimedJob, Dropped when the message must not
    run it, or Busy when it is to be tried again in a moment.

    ``cr`` is the worker's control cursor in autocommit mode; its connection holds no other
    job's lock. The caller must ``release`` a claimed job when it is done with it.
    """
    # The usual case, a job waiting for this very message, in one statement. Its snapshot
    # may predate the commit of a worker that ran the job meanwhile and then let go of the
    # lock; PostgreSQL then checks the condition again on the row as that worker left it
    # (READ COMMITTED), and the CASE takes the lock only on a row that still waits.
    # A job in a channel starts if its path admits it now (``celery_job_channel_take``, in
    # this statement's transaction); one it refuses is held by ``_claim_unusual``.
    _execute(cr, _mark_started("", "uuid = %s AND CASE WHEN celery_task_id = %s"
                                   " AND state IN ('pending', 'enqueued')"
                                   " AND (eta IS NULL OR eta <= " + NOW + ")"
                                   " THEN CASE WHEN NOT pg_try_advisory_lock(%s, id) THEN false"
                                   " WHEN channel_id IS NULL THEN true"
                                   " ELSE celery_job_channel_take(id) END ELSE false END")
             + ", id", (hostname, pid, job_uuid, task_id, RUNNING_LOCK))
    row = cr.fetchone()
    if row:
        return ClaimedJob(row[-1], job_uuid, row[:-1])
    # A lock the check above took on a row it then found changed is let go.
    cr.execute("SELECT pg_advisory_unlock_all()")
    cr.execute("SELECT id, pg_try_advisory_lock(%s, id) FROM celery_job WHERE uuid = %s",
               (RUNNING_LOCK, job_uuid))
    row = cr.fetchone()
    if row is None:
        return Dropped("no such job", None, ())
    job_id, locked = row
    if not locked:
        cr.execute("SELECT state IN ('pending', 'enqueued') AND celery_task_id = %s"
                   " FROM celery_job WHERE id = %s", (task_id, job_id))
        if cr.fetchone()[0]:
            # Waiting for this very message, yet locked: the worker that ended its previous
            # run (a failure retried by hand at once) has not let go of the lock yet.
            return Busy()
        return Dropped("it is running in another worker", None, ())
    claimed = _claim_unusual(cr, job_id, job_uuid, task_id, hostname, pid)
    if isinstance(claimed, Dropped):
        release(cr, job_id)
    return claimed


def _claim_unusual(cr, job_id, job_uuid, task_id, hostname, pid):
    """``claim`` of a job, locked here (READ COMMITTED: what follows reads it as it is now),
    that is not simply waiting for this message."""
    cr.execute("SELECT state, celery_task_id, retry_count, max_retries, queue, priority,"
               " extract(epoch from eta - " + NOW + "), channel_id FROM celery_job WHERE id = %s",
               (job_id,))
    state, current_task_id, retry_count, max_retries, queue, priority, seconds_to_eta, \
        channel_id = cr.fetchone()
    seconds_to_eta = float(seconds_to_eta or 0)
    if state not in RUNNABLE:
        return Dropped("it is %s" % state, None, ())
    if current_task_id != task_id:
        return Dropped("the job was published again since (task %s)" % current_task_id, None, ())
    if seconds_to_eta > EARLY_TOLERANCE:
        eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds_to_eta)
        return Dropped("it is due in %.1f s; published again for then" % seconds_to_eta,
                       Dispatch(job_id, job_uuid, queue, priority, eta, task_id), ())
    if state == STARTED:
        # Free lock on a started job: the worker that ran it died before it ended.
        if retry_count >= max_retries:
            notices = fail(cr, job_id, dead_worker_reason(max_retries), from_states=(STARTED,))
            return Dropped("its worker died and it has no retries left", None, notices)
        retry_count += 1
        _logger.warning("job %s: its worker died mid-run; running it again (retry %d/%d)",
                        job_uuid, retry_count, max_retries)
    elif channel_id:
        # A started job keeps the slot it had; any other waits for one.
        refusal, start_at = admit(cr, job_id)
        if start_at:
            later = _dispatch((job_id, job_uuid, queue, priority, start_at, task_id))
            wait = (later.eta - datetime.datetime.utcnow()).total_seconds()
            return Dropped("%s; published again for its start reserved in %.2f s"
                           % (refusal, wait), later, ())
        if refusal:
            return Dropped("%s; held until it may start" % refusal, None, ())
    cr.execute(_mark_started(", retry_count = %s", "id = %s"),
               (hostname, pid, retry_count, job_id))
    return ClaimedJob(job_id, job_uuid, cr.fetchone(), early_by=max(seconds_to_eta, 0.0))


def start_in_transaction(cr, job_id, hostname, pid):
    """Mark the job started if it waits for a worker, for a run in ``cr``'s own transaction
    (see ``execution.run_in_transaction``), whatever its eta: a ClaimedJob, or None.

    No advisory lock is taken: the row stays locked by this update until that transaction
    ends, and nothing outside it sees the job started.
    """
    cr.execute(_mark_started("", "id = %s AND state IN ('pending', 'enqueued')") + ", uuid",
               (hostname, pid, job_id))
    row = cr.fetchone()
    return row and ClaimedJob(job_id, row[-1], row[:-1])


def dead_worker_reason(max_retries):
    return ("The worker running this job died (killed, or out of memory), and its %d "
            "retries are used up." % max_retries)


def release(cr, job_id):
    """Let go of a claimed job's lock (``cr``: the control cursor, in autocommit mode) and,
    if it is done, count it off the jobs waiting for it that the statement which ended it
    did not see (enqueued after its REPEATABLE READ snapshot); the Dispatches of the jobs
    that released, to publish. Each dependency is counted once.

    Every hold of the lock goes: a claim that waited for another transaction's update of
    the row (a publisher recording the dispatch) evaluated its condition twice, taking the
    lock twice, and one unlock would leave the job locked for good. The control connection
    holds no other lock (``claim``).
    """
    _execute(cr, "WITH ended AS (SELECT id, state FROM celery_job WHERE id = %s"
                 " AND state = 'done'), " + _RELEASED_SQL + " SELECT "
             + _RELEASED_DISPATCHES + ", pg_advisory_unlock_all()", (job_id,))
    released = cr.fetchone()[0]
    _logger.debug("job %d: lock released", job_id)
    return [_dispatch(row) for row in released or ()]


# ---------------------------------------------------------------------- a job's end

# The CTEs that count the jobs of CTE ``ended`` (id, state) that are done off the jobs
# waiting for them, each edge once, and make ``pending`` those with none left (``released``).
_RELEASED_SQL = (
    "counted AS (UPDATE celery_job_dependency d SET counted = true FROM ended"
    " WHERE d.depends_on_id = ended.id AND ended.state = 'done' AND NOT d.counted"
    " RETURNING d.job_id),"
    " released AS (UPDATE celery_job w SET dependencies_left = w.dependencies_left - r.n,"
    "  state = CASE WHEN w.state = 'waiting' AND w.dependencies_left = r.n THEN 'pending'"
    "  ELSE w.state END, write_date = " + NOW +
    "  FROM (SELECT job_id, count(*) AS n FROM counted GROUP BY job_id) r WHERE w.id = r.job_id"
    "  RETURNING w.id, w.uuid, w.queue, w.priority, w.eta, w.celery_task_id, w.state)")
_RELEASED_DISPATCHES = ("(SELECT json_agg(json_build_array(id, uuid, queue, priority, eta,"
                        " celery_task_id)) FROM released WHERE state = 'pending')")


class Ended(collections.namedtuple("Ended", "ids channels released")):
    """What ending jobs did: the ids moved, the bus channels to wake and the Dispatches of
    the jobs it released, both once the transaction commits."""


def _end_jobs(cr, job_ids, state, from_states, assignments, params, notify_jobs=True,
              alone=False):
    """Move the jobs among ``job_ids`` that are in ``from_states`` to the ended ``state``
    and, in the same statement, release what waited for them and end their batches.

    In that one statement: each job waiting for a job that ended ``done`` has one
    dependency less, and those with none left become ``pending`` (returned, to publish once
    ``cr`` commits, so no crash can strand them between two transactions); each batch has
    its newly ended jobs counted off, and one whose last job ended is ended; the bus
    notices of the jobs (``notify_jobs``) and of the ended batches are written.

    ``alone``: one job that was in no batch and no channel, and that no job waited for as
    it started; the statement only ends it and writes its notice (the jobs that came to
    wait for it since are counted off by its worker's ``release``, or by the sweeper).
    """
    job_ids, from_states = list(job_ids), list(from_states)
    newly_ended = job_ids
    if len(job_ids) > 1 or set(from_states) & set(ENDED):
        # Rows locked first, in order, by a statement of their own: the one that ends them
        # then sees every dependent committed meanwhile. One job moved from a state before
        # its end is locked by the ending statement itself (``locked``): a worker's
        # ``release`` counts it off the dependents that statement's snapshot missed.
        _execute(cr, "SELECT id, state FROM celery_job WHERE id = ANY(%s) AND state = ANY(%s)"
                     " ORDER BY id FOR UPDATE", (job_ids, from_states))
        locked = cr.fetchall()
        if not locked:
            return Ended([], [], [])
        job_ids = [job_id for job_id, _state in locked]
        newly_ended = [job_id for job_id, old_state in locked if old_state not in ENDED]
    dbname = cr.connection.info.dbname
    job_notice, job_params = odoo_version.job_end_notice(dbname, "notified", "celery.job")
    # An enqueue share-locks the jobs it makes others wait for: ``locked`` waits for it.
    # One job is named alone, so that its prepared statement's one plan expects one row.
    sql = ("WITH locked AS (SELECT id FROM celery_job WHERE id "
           + ("= %s" if len(job_ids) == 1 else "= ANY(%s)") + " AND state = ANY(%s) FOR UPDATE),"
           " ended AS (UPDATE celery_job SET state = %s, held = false, " + assignments +
           ", date_done = " + NOW + " WHERE id IN (SELECT id FROM locked)"
           " RETURNING id, name, state, user_id, batch_id, channel_id),"
           " notified AS (SELECT * FROM ended WHERE %s), job_notice AS (" + job_notice + ")")
    params = (job_ids[0] if len(job_ids) == 1 else job_ids, from_states, state) + tuple(params) \
        + (notify_jobs,) + tuple(job_params)
    if alone:
        _execute(cr, sql + " SELECT ARRAY(SELECT id FROM ended),"
                           " ARRAY(SELECT channel FROM job_notice)", params)
        ids, notices = cr.fetchone()
        return Ended(ids, notices, [])
    batch_notice, batch_params = odoo_version.job_end_notice(dbname, "ended_batches",
                                                             "celery.job.batch")
    _execute(
        cr,
        sql + ", " + _RELEASED_SQL + ","
        " batches AS (UPDATE celery_job_batch b SET jobs_left = b.jobs_left - e.n,"
        "  state = CASE WHEN b.jobs_left = e.n THEN 'ended' ELSE 'running' END,"
        "  date_done = CASE WHEN b.jobs_left = e.n THEN " + NOW + " END"
        "  FROM (SELECT batch_id, count(*) AS n FROM ended WHERE batch_id IS NOT NULL"
        "   AND id = ANY(%s) GROUP BY batch_id) e"
        "  WHERE b.id = e.batch_id RETURNING b.id, b.name, b.state, b.user_id),"
        " ended_batches AS (SELECT * FROM batches WHERE state = 'ended'),"
        " batch_notice AS (" + batch_notice + ")"
        " SELECT ARRAY(SELECT id FROM ended),"
        "  ARRAY(SELECT channel FROM job_notice UNION ALL SELECT channel FROM batch_notice),"
        "  ARRAY(SELECT DISTINCT channel_id FROM ended WHERE channel_id IS NOT NULL), "
        + _RELEASED_DISPATCHES,
        params + (newly_ended,) + tuple(batch_params))
    ids, notices, channels, released = cr.fetchone()
    released = [_dispatch(row) for row in released or ()]
    if channels:
        # A slot of their paths freed (or, sequential, the next job's turn came).
        released += release_held(cr, channels, len(ids))
    return Ended(ids, notices, released)


def _end(cr, job_id, state, from_states, assignments, params, alone=False):
    """End one job with its user's bus notice (see ``_end_jobs``); None when the job was
    not in ``from_states`` (logged)."""
    ended = _end_jobs(cr, [job_id], state, from_states, assignments, params, alone=alone)
    if not ended.ids:
        _logger.warning("job %d: not marked %s, it was no longer %s", job_id, state,
                        " or ".join(from_states))
        return None
    return ended


def mark_done(cr, job_id, result, exec_time, alone=False):
    """Record success in the transaction that holds the job's work, releasing the jobs
    that waited for it only (see ``_end_jobs``, and its ``alone``: a worker's job that
    ends no others); an Ended, or None."""
    return _end(cr, job_id, DONE, (STARTED,), "result = %s, exc_info = NULL, exec_time = %s",
                (result, exec_time), alone)


def fail(cr, job_id, exc_info, exec_time=None, from_states=(STARTED,)):
    """Mark the job failed with the traceback or reason ``exc_info``: the jobs waiting for
    it keep waiting (a retry that succeeds releases them). The bus channels to wake, or
    None."""
    ended = _end(cr, job_id, FAILED, from_states, "exc_info = %s, exec_time = %s",
                 (exc_info, exec_time))
    return ended and ended.channels


# What a run of a job leaves on its row, cleared as the job is to run again.
_RUN_CLEARED = ("date_started = NULL, date_done = NULL, exec_time = NULL,"
                " worker_hostname = NULL, worker_pid = NULL")


def retry_delay(retry_count):
    """Seconds before retry number ``retry_count + 1``: exponential backoff with jitter."""
    base = settings.option("retry_backoff")
    return min(3600.0, base * 2 ** retry_count) * random.uniform(0.5, 1.5)


def mark_retry(cr, job, exc_info, seconds=None):
    """Put a started job back to wait for a retry after ``seconds`` (default: backoff).

    Returns the Dispatches of the retry and of a job its channel held that takes its slot
    (None when the job had been moved on), for the caller to publish once it has released
    the job's lock: a retry delivered while the lock is held would be dropped as running
    elsewhere.
    """
    if seconds is None:
        seconds = retry_delay(job.retry_count)
    eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)
    task_id = new_task_id()
    cr.execute("UPDATE celery_job SET state = 'enqueued', retry_count = retry_count + 1,"
               " eta = %s, exc_info = %s, celery_task_id = %s, " + _RUN_CLEARED +
               " WHERE id = %s AND state = 'started' RETURNING channel_id",
               (eta, exc_info, task_id, job.id))
    row = cr.fetchone()
    if not row:
        _logger.warning("job %d: not put back for a retry, it was no longer started", job.id)
        return None
    return [Dispatch(job.id, job.uuid, job.queue, job.priority, eta, task_id)] + (
        release_held(cr, [row[0]], 1) if row[0] else [])


# ---------------------------------------------------------------------- by hand (buttons)

def cancel(cr, job_ids, uid):
    """Cancel the jobs among ``job_ids`` that have not started, and with them every job
    waiting for one of them, however far down (they could never run); an Ended. Started
    jobs are stopped by their worker instead (``request_stop``)."""
    cr.execute("WITH RECURSIVE doomed(id) AS (SELECT id FROM celery_job WHERE id = ANY(%s)"
               " AND state IN %s UNION SELECT d.job_id FROM celery_job_dependency d"
               " JOIN doomed ON d.depends_on_id = doomed.id"
               " JOIN celery_job w ON w.id = d.job_id AND w.state = 'waiting')"
               " SELECT id FROM doomed", (list(job_ids), CANCELLABLE))
    doomed = [row[0] for row in cr.fetchall()]
    return _end_by_hand(cr, doomed, uid, CANCELLED, CANCELLABLE)


def request_stop(cr, job_ids, uid):
    """Ask the workers running the started jobs among ``job_ids`` to stop them, for user
    ``uid``: a stop request of each one's current run, and a NOTIFY on STOP_CHANNEL that
    PostgreSQL sends once ``cr`` commits (never for a request rolled back). The ids asked.

    The worker ends the job (``end_stopped``); one that ends on its own first keeps its end.
    """
    cr.execute(
        "WITH requested AS (INSERT INTO celery_job_stop (job_id, task_id, user_id, date)"
        " SELECT id, celery_task_id, %s, " + NOW + " FROM celery_job"
        " WHERE id = ANY(%s) AND state = 'started' ON CONFLICT (job_id) DO UPDATE"
        " SET task_id = EXCLUDED.task_id, user_id = EXCLUDED.user_id, date = EXCLUDED.date"
        " RETURNING job_id, task_id)"
        " SELECT job_id, pg_notify(%s, job_id || ' ' || task_id) FROM requested ORDER BY job_id",
        (uid, list(job_ids), STOP_CHANNEL))
    return [row[0] for row in cr.fetchall()]


def stop_requested(cr, job_id, task_id):
    """Whether a stop of the job's run ``task_id`` was requested (for a worker that may
    have missed its NOTIFY)."""
    cr.execute("SELECT 1 FROM celery_job_stop WHERE job_id = %s AND task_id = %s",
               (job_id, task_id))
    return cr.fetchone() is not None


def end_stopped(cr, job_id, task_id, trace, exec_time):
    """Cancel the started job whose run ``task_id`` its worker stopped on request, its work
    rolled back, with ``trace`` and "Stopped by <user>." as its traceback, and every job
    waiting for it (as ``cancel``); an Ended (its ``released``: the jobs its channels held
    that may start now), or None when no stop of this run was requested or the job was no
    longer started (logged)."""
    cr.execute("DELETE FROM celery_job_stop s WHERE job_id = %s AND task_id = %s"
               " RETURNING s.user_id, (SELECT p.name FROM res_users u JOIN res_partner p"
               " ON p.id = u.partner_id WHERE u.id = s.user_id)", (job_id, task_id))
    request = cr.fetchone()
    if request is None:
        _logger.warning("job %d: not stopped, no stop of its run %s was requested",
                        job_id, task_id)
        return None
    uid, user_name = request
    ended = _end(cr, job_id, CANCELLED, (STARTED,), "exc_info = %s, exec_time = %s",
                 ("%sStopped by %s." % (trace, user_name or "a deleted user"), exec_time))
    if ended is None:
        return None
    cr.execute("SELECT d.job_id FROM celery_job_dependency d JOIN celery_job w"
               " ON w.id = d.job_id AND w.state = 'waiting' WHERE d.depends_on_id = %s",
               (job_id,))
    dependents = cancel(cr, [row[0] for row in cr.fetchall()], uid or SUPERUSER_ID)
    return Ended(ended.ids + dependents.ids, ended.channels + dependents.channels,
                 ended.released + dependents.released)


def set_done(cr, job_ids, uid):
    """Mark done by hand the jobs among ``job_ids`` that are not running, releasing what
    waited for them; an Ended."""
    return _end_by_hand(cr, job_ids, uid, DONE, CANCELLABLE + (FAILED, CANCELLED))


def _end_by_hand(cr, job_ids, uid, state, from_states):
    return _end_jobs(cr, job_ids, state, from_states, "write_date = " + NOW + ", write_uid = %s",
                     (uid,), notify_jobs=False)


class IdentityKeyTaken(Exception):
    """A job cannot run again while a newer one of its user holds its identity key."""

    def __init__(self, holders):
        super().__init__(holders)
        self.holders = holders  # [(job id, identity key, id of the job holding the key)]


def retry(cr, job_ids, uid, user_name):
    """Run the failed or cancelled jobs among ``job_ids`` again, from a clean retry count
    (``waiting`` again while a job they depend on is not done); the Dispatches of those
    that run now, to publish once ``cr`` commits.

    Raises IdentityKeyTaken (nothing changed) when a newer active job of the same user
    holds the identity key of one of them.
    """
    cr.execute("SELECT j.id, j.identity_key, other.id FROM celery_job j JOIN celery_job other"
               " ON other.user_id = j.user_id AND other.identity_key = j.identity_key"
               " AND other.state IN " + _ACTIVE_SQL + " WHERE j.id = ANY(%s)"
               " AND j.state IN ('failed', 'cancelled')", (list(job_ids),))
    holders = cr.fetchall()
    if holders:
        raise IdentityKeyTaken(holders)
    cr.execute(
        "WITH retried AS (UPDATE celery_job SET retry_count = 0, eta = NULL, held = false,"
        " state = CASE WHEN dependencies_left > 0 THEN 'waiting' ELSE 'pending' END,"
        " celery_task_id = md5(random()::text || id::text), " + _RUN_CLEARED + ","
        " date_enqueued = NULL, write_date = " + NOW + ", write_uid = %s,"
        " retry_history = left(to_char(" + NOW + ", 'YYYY-MM-DD HH24:MI:SS') || ' UTC  retried by '"
        " || %s || coalesce(E'\\n' || retry_history, ''), %s)"
        " WHERE id = ANY(%s) AND state IN ('failed', 'cancelled')"
        " RETURNING id, uuid, queue, priority, eta, celery_task_id, state, batch_id),"
        # A retried job counts in its batch again, which runs again until it ends.
        " batches AS (UPDATE celery_job_batch b SET jobs_left = b.jobs_left + r.n,"
        "  state = 'running', date_done = NULL FROM (SELECT batch_id, count(*) AS n"
        "  FROM retried WHERE batch_id IS NOT NULL GROUP BY batch_id) r WHERE b.id = r.batch_id"
        "  RETURNING b.id)"
        " SELECT id, uuid, queue, priority, eta, celery_task_id, state FROM retried",
        (uid, user_name, HISTORY_MAX_CHARS, list(job_ids)))
    rows = cr.fetchall()
    if rows:
        cr.execute("DELETE FROM celery_job_progress WHERE job_id = ANY(%s)",
                   ([row[0] for row in rows],))
    return [_dispatch(row) for row in rows if row[6] == PENDING]


# ---------------------------------------------------------------------- progress

def record_progress(cr, job_id, percent, message):
    """Upsert the running job's progress row."""
    cr.execute("INSERT INTO celery_job_progress (job_id, percent, message, date)"
               " VALUES (%s, %s, %s, " + NOW + ") ON CONFLICT (job_id) DO UPDATE"
               " SET percent = EXCLUDED.percent, message = EXCLUDED.message, date = EXCLUDED.date",
               (job_id, percent, message))


def progress(cr, job_ids):
    """{job id: (percent, message)} of the jobs among ``job_ids`` that reported progress."""
    cr.execute("SELECT job_id, percent, message FROM celery_job_progress WHERE job_id = ANY(%s)",
               (list(job_ids),))
    return {job_id: (percent, message) for job_id, percent, message in cr.fetchall()}


# ---------------------------------------------------------------------- crons

def sweep(cr, grace, window, republish_after):
    """Recover jobs that lost their way; their Dispatches and bus channels to wake.

    Jobs left ``started`` by a dead worker (their lock is free) run again, or fail once
    their retries are used up, or end cancelled when a stop was asked of that run; jobs
    left ``waiting`` although every job they depend on is done are released; jobs left
    ``pending`` (publishing never happened), waiting in the database for an eta now near,
    or ``enqueued`` so long that their broker must have lost them are published again.
    ``cr`` is READ COMMITTED: workers move these jobs on meanwhile, and their updates must
    neither fail the sweep nor be undone by it. ``held`` is NULL on a job never held: a
    condition on it says ``IS TRUE``, so that its channel's admission is asked of held
    jobs only, not of every waiting one.
    """
    # The lock is tried on old started jobs only (CASE fixes the order of evaluation):
    # taking it on a waiting job would make its worker drop the job's message.
    cr.execute("SELECT id, retry_count, max_retries, celery_task_id FROM celery_job"
               " WHERE state = 'started' AND CASE WHEN date_started < " + NOW +
               " - make_interval(secs => %s) THEN pg_try_advisory_xact_lock(%s, id)"
               " ELSE false END", (grace, RUNNING_LOCK))
    dead = cr.fetchall()
    notices = []
    for job_id, retry_count, max_retries, task_id in dead:
        if stop_requested(cr, job_id, task_id):
            ended = end_stopped(cr, job_id, task_id, "The worker running this job died.\n", None)
            notices += ended.channels if ended else []
        elif retry_count >= max_retries:
            notices += fail(cr, job_id, dead_worker_reason(max_retries))
    cr.execute(
        "UPDATE celery_job SET celery_task_id = md5(random()::text || id::text),"
        " retry_count = retry_count + (state = 'started')::int, state = 'pending', held = false,"
        " dependencies_left = CASE WHEN state = 'waiting' THEN 0 ELSE dependencies_left END"
        " WHERE id = ANY(%(dead)s) AND state = 'started'"
        " OR state = 'waiting' AND NOT EXISTS (SELECT 1 FROM celery_job_dependency d"
        "    JOIN celery_job dependency ON dependency.id = d.depends_on_id"
        "    WHERE d.job_id = celery_job.id AND dependency.state <> 'done')"
        " OR state = 'pending' AND create_date < " + NOW + " - make_interval(secs => %(grace)s)"
        " OR state = 'enqueued' AND date_enqueued IS NULL AND held IS NOT TRUE"
        "    AND (eta IS NULL OR eta < " + NOW + " + make_interval(secs => %(window)s))"
        " OR state = 'enqueued' AND held IS TRUE AND NOT EXISTS (SELECT 1"
        "    FROM celery_job_channel_refusal(id) r WHERE r.refusal IS NOT NULL AND r.wait IS NULL)"
        " OR state = 'enqueued' AND held IS NOT TRUE AND date_enqueued < " + NOW +
        "    - make_interval(secs => %(republish)s) AND (eta IS NULL OR eta < " + NOW + ")"
        " RETURNING id, uuid, queue, priority, eta, celery_task_id",
        {"dead": [row[0] for row in dead], "grace": grace, "window": window,
         "republish": republish_after})
    return [_dispatch(row) for row in cr.fetchall()], notices


def delete_ended(cr, states, days, batch_size):
    """Delete up to ``batch_size`` jobs in ``states`` that ended ``days`` ago, but none a
    waiting job depends on (its form shows what it waits for); how many."""
    cr.execute("DELETE FROM celery_job WHERE id IN (SELECT id FROM celery_job j WHERE state IN %s"
               " AND date_done < " + NOW + " - make_interval(days => %s)"
               " AND NOT EXISTS (SELECT 1 FROM celery_job_dependency d JOIN celery_job w"
               "  ON w.id = d.job_id AND w.state = 'waiting' WHERE d.depends_on_id = j.id)"
               " LIMIT %s)", (tuple(states), days, batch_size))
    return cr.rowcount


# ---------------------------------------------------------------------- batches

def create_batch(cr, name, uid, company_id):
    """A new, still empty batch of user ``uid``; its id. Jobs are inserted with its id,
    then ``seal_batch`` counts them."""
    cr.execute("INSERT INTO celery_job_batch (name, user_id, company_id, state, jobs_left,"
               " create_uid, write_uid, create_date, write_date)"
               " VALUES (%s, %s, %s, 'running', 0, %s, %s, " + NOW + ", " + NOW + ") RETURNING id",
               (name, uid, company_id, uid, uid))
    return cr.fetchone()[0]


def seal_batch(cr, batch_id):
    """Count the batch's jobs that have not ended, in the transaction that inserted them
    (none can end before it commits): each job's end counts itself off from then on."""
    cr.execute("UPDATE celery_job_batch SET jobs_left = (SELECT count(*) FROM celery_job"
               " WHERE batch_id = %s AND state NOT IN %s) WHERE id = %s AND state = 'running'",
               (batch_id, ENDED, batch_id))


def batch_counts(cr, batch_ids):
    """{batch id: {state: number of its jobs}}, counted now."""
    cr.execute("SELECT batch_id, state, count(*) FROM celery_job WHERE batch_id = ANY(%s)"
               " GROUP BY batch_id, state", (list(batch_ids),))
    counts = collections.defaultdict(dict)
    for batch_id, state, count in cr.fetchall():
        counts[batch_id][state] = count
    return counts


def channel_counts(cr, channel_ids):
    """{channel id: (jobs started, jobs held)} of the channels' own jobs, counted now."""
    cr.execute("SELECT channel_id, count(*) FILTER (WHERE state = 'started'),"
               " count(*) FILTER (WHERE state = 'enqueued' AND held) FROM celery_job"
               " WHERE channel_id = ANY(%s) AND state IN ('started', 'enqueued')"
               " GROUP BY channel_id", (list(channel_ids),))
    return {row[0]: row[1:] for row in cr.fetchall()}


# ---------------------------------------------------------------------- metrics (read only)

# What jobs are counted by, in this order: the GROUP BY of ``count_jobs`` and the labels of
# its metric (a new label joins here, and so the index celery_job_counted_by_...).
COUNTED_BY = ("state", "queue")
# Run time: the runner's exec_time, else from the job's own dates (a job its worker lost).
_RUN_SECONDS = "coalesce(exec_time, extract(epoch FROM date_done - date_started))"
# Commit-to-start: from its last handing to the broker, or its eta if later, to its start.
_START_LATENCY_SECONDS = ("greatest(0, extract(epoch FROM date_started"
                          " - greatest(date_enqueued, eta)))")


def count_jobs(cr):
    """[(*COUNTED_BY values, jobs)]: every job of the table, counted."""
    labels = ", ".join(COUNTED_BY)
    cr.execute("SELECT %s, count(*) FROM celery_job GROUP BY %s" % (labels, labels))
    return cr.fetchall()


def retries_per_queue(cr):
    """{queue: retries of the jobs of the table}."""
    cr.execute("SELECT queue, sum(retry_count) FROM celery_job WHERE retry_count > 0"
               " GROUP BY queue")
    return {queue: int(retries) for queue, retries in cr.fetchall()}


def oldest_waiting_ages(cr):
    """{queue: seconds} since the oldest job due and waiting for a worker was due, per queue."""
    cr.execute("SELECT queue, extract(epoch FROM " + NOW + " - min(greatest(create_date, eta)))"
               " FROM celery_job WHERE state IN %s AND (eta IS NULL OR eta <= " + NOW + ")"
               " GROUP BY queue", (QUEUED,))
    return {queue: max(0.0, float(age)) for queue, age in cr.fetchall()}


def _histogram_columns(value, buckets):
    """The aggregates of one histogram of the column ``value``: how many, their sum, how
    many at most each bucket's bound."""
    return ["count(%s)" % value, "coalesce(sum(%s), 0)" % value] + [
        "count(*) FILTER (WHERE %s <= %r)" % (value, float(bound)) for bound in buckets]


def ended_job_histograms(cr, window, run_buckets, latency_buckets):
    """{queue: {"run": (count, sum, [count per bucket]), "latency": (...)}} of the jobs that
    ran and ended (done or failed) within the last ``window`` seconds; the bucket counts are
    cumulative, one per bound of ``run_buckets`` / ``latency_buckets``."""
    columns = (_histogram_columns("run", run_buckets)
               + _histogram_columns("latency", latency_buckets))
    # Each job's two values computed once (OFFSET 0 keeps the planner from copying their
    # expressions into every aggregate: 3x faster), then counted per bucket.
    cr.execute("SELECT queue, " + ", ".join(columns) + " FROM (SELECT queue, " + _RUN_SECONDS
               + " AS run, " + _START_LATENCY_SECONDS + " AS latency FROM celery_job"
               " WHERE state IN %s AND date_done >= " + NOW + " - make_interval(secs => %s)"
               " AND date_started IS NOT NULL OFFSET 0) AS ended GROUP BY queue",
               ((DONE, FAILED), window))
    histograms = {}
    for row in cr.fetchall():
        run, latency = row[1:3 + len(run_buckets)], row[3 + len(run_buckets):]
        histograms[row[0]] = {"run": (run[0], float(run[1]), list(run[2:])),
                              "latency": (latency[0], float(latency[1]), list(latency[2:]))}
    return histograms
