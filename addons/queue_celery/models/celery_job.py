"""The job record: its fields, its states and every transition between them."""
import datetime
import json
import logging
import os
import random
import time
import uuid

import psycopg2

import odoo
from odoo import SUPERUSER_ID, _, api, fields, models
from odoo.addons.bus.models.bus import json_dump
from odoo.addons.bus.models.bus_presence import DISCONNECTION_TIMER
from odoo.exceptions import AccessError, UserError

from ..core import encoding
from ..core.celeryapp import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    QUEUES,
    Dispatch,
    option,
    publish_after_commit,
    publish_committed,
)

_logger = logging.getLogger(__name__)

STATES = [
    ("pending", "Pending"),      # written, not yet handed to the broker
    ("enqueued", "Enqueued"),    # handed to the broker, or waiting for its eta
    ("started", "Started"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]
WAITING_STATES = ("pending", "enqueued", "started")
DEFAULT_MAX_RETRIES = 5
MANAGER_GROUP = "queue_celery.group_celery_job_manager"
USER_GROUP = "queue_celery.group_celery_job_user"

_NOW = "(statement_timestamp() at time zone 'UTC')"
_INSERT_COLUMNS = ("uuid", "name", "model_name", "method_name", "record_ids", "args", "kwargs",
                   "context", "user_id", "company_id", "queue", "priority", "state", "eta",
                   "retry_count", "max_retries", "celery_task_id", "identity_key", "time_limit",
                   "create_uid", "write_uid")


def new_task_id():
    return str(uuid.uuid4())


def record_dispatch(cr, published, deferred, failed):
    """Record what publishing did: handed over, waiting for its eta, or left to the sweeper."""
    if published:
        cr.execute("UPDATE celery_job SET state = 'enqueued', date_enqueued = " + _NOW +
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (published,))
    if deferred:
        cr.execute("UPDATE celery_job SET state = 'enqueued', date_enqueued = NULL"
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (deferred,))
    if failed:
        cr.execute("UPDATE celery_job SET date_enqueued = NULL"
                   " WHERE id = ANY(%s) AND state IN ('pending', 'enqueued')", (failed,))


def retry_delay(retry_count):
    """Seconds before retry number ``retry_count + 1``: exponential backoff with jitter."""
    base = option("retry_backoff", 5.0)
    return min(3600.0, base * 2 ** retry_count) * random.uniform(0.5, 1.5)


class CeleryJob(models.Model):
    _name = "celery.job"
    _description = "Background job"
    _order = "id desc"

    uuid = fields.Char(required=True, readonly=True, copy=False)  # indexed by its unique constraint
    name = fields.Char("Description", readonly=True)
    model_name = fields.Char("Model", required=True, readonly=True, index=True)
    method_name = fields.Char("Method", required=True, readonly=True)
    record_ids = fields.Text("Record IDs", readonly=True, help="JSON list of the target's ids")
    args = fields.Text("Arguments", readonly=True, help="JSON")
    kwargs = fields.Text("Keyword arguments", readonly=True, help="JSON")
    context = fields.Text(readonly=True, help="The enqueuing context, JSON")
    user_id = fields.Many2one("res.users", required=True, readonly=True, index=True,
                              ondelete="cascade")
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    queue = fields.Selection([(queue, queue.capitalize()) for queue in QUEUES],
                             required=True, default="default", readonly=True, index=True)
    priority = fields.Integer(default=DEFAULT_PRIORITY, readonly=True,
                              help="0 runs first, %d last" % MAX_PRIORITY)
    state = fields.Selection(STATES, required=True, default="pending", readonly=True, index=True)
    eta = fields.Datetime("Not before", readonly=True)
    retry_count = fields.Integer("Retries", default=0, readonly=True)
    max_retries = fields.Integer(default=DEFAULT_MAX_RETRIES, readonly=True)
    result = fields.Text(readonly=True, help="JSON")
    exc_info = fields.Text("Traceback", readonly=True)
    celery_task_id = fields.Char("Celery task ID", readonly=True, index=True, copy=False)
    identity_key = fields.Char(readonly=True, copy=False)  # indexed while waiting (init)
    worker_hostname = fields.Char("Worker", readonly=True)
    worker_pid = fields.Integer("Worker PID", readonly=True)
    date_enqueued = fields.Datetime("Enqueued on", readonly=True,
                                    help="Last time the job was handed to the broker")
    date_started = fields.Datetime("Started on", readonly=True)
    date_done = fields.Datetime("Ended on", readonly=True)
    exec_time = fields.Float("Run time (s)", readonly=True, group_operator="avg")
    time_limit = fields.Integer(readonly=True, help="Seconds the job may run; 0: the "
                                "celery_job_time_limit of odoo.conf")

    _sql_constraints = [
        ("uuid_unique", "unique(uuid)", "A job's UUID is unique."),
        ("priority_range", "check(priority between 0 and %d)" % MAX_PRIORITY,
         "A job's priority is between 0 and %d." % MAX_PRIORITY),
        ("max_retries_positive", "check(max_retries >= 0)", "max_retries cannot be negative."),
    ]

    @api.model_cr
    def init(self):
        # Identity keys are unique among waiting jobs, enforced by the database itself.
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS celery_job_identity_key_waiting"
            " ON celery_job (identity_key) WHERE identity_key IS NOT NULL"
            " AND state IN ('pending', 'enqueued', 'started')")
        # The sweeper scans waiting jobs only; the cleanup cron ends of finished ones.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS celery_job_waiting ON celery_job (state, date_enqueued)"
            " WHERE state IN ('pending', 'enqueued', 'started')")
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS celery_job_ended ON celery_job (state, date_done)"
            " WHERE state IN ('done', 'failed', 'cancelled')")

    # ------------------------------------------------------------------ enqueue

    @api.model
    @api.returns("self", lambda job: job.id)
    def enqueue(self, target, method_name, args=(), kwargs=None, queue="default", priority=None,
                eta=None, countdown=None, max_retries=None, description=None, identity_key=None,
                record_ids=None, time_limit=None):
        """Run ``target.method_name(*args, **kwargs)`` in the background; return the job.

        :param target: a recordset, or a model name (then give ``record_ids``, as RPC does)
        :param method_name: a public method of the target's model
        :param queue: ``default``, ``high`` or ``low``
        :param priority: 0 (first) to 9 (last) within the queue, where the broker supports it
        :param eta: do not start before this UTC datetime; ``countdown``: before so many seconds
        :param max_retries: how often a ``RetryableJobError`` may retry the job (default 5)
        :param description: the job's name in the Jobs screen
        :param identity_key: while a job with this key waits or runs, return it instead
        :param time_limit: seconds the job may run before it fails (default: odoo.conf's
            ``celery_job_time_limit``)
        """
        if method_name.startswith("_"):
            raise UserError(_("Private method %s cannot be enqueued; use "
                              "records.with_delay() from Python.") % method_name)
        if isinstance(target, models.BaseModel):
            if record_ids is not None:
                raise UserError(_("Give record_ids only with a model name as target."))
            model_name, record_ids = target._name, target.ids
        else:
            model_name = target
        return self._enqueue(model_name, record_ids or [], method_name, args, kwargs, queue=queue,
                             priority=priority, eta=eta, countdown=countdown,
                             max_retries=max_retries, description=description,
                             identity_key=identity_key, time_limit=time_limit)

    @api.model
    def _enqueue(self, model_name, record_ids, method_name, args=(), kwargs=None, queue="default",
                 priority=None, eta=None, countdown=None, max_retries=None, description=None,
                 identity_key=None, time_limit=None):
        """``enqueue`` without the public-method rule: private methods are allowed here."""
        if not (self.env.uid == SUPERUSER_ID or self.env.user.has_group(USER_GROUP)):
            raise AccessError(_("Only internal users may enqueue jobs."))
        if not isinstance(model_name, str) or model_name not in self.env:
            raise UserError(_("Unknown model %r.") % (model_name,))
        method = getattr(type(self.env[model_name]), method_name, None)
        if not callable(method):
            raise UserError(_("Model %(model)s has no method %(method)r.")
                            % {"model": model_name, "method": method_name})
        if queue not in QUEUES:
            raise UserError(_("Unknown queue %(queue)r: use one of %(queues)s.")
                            % {"queue": queue, "queues": ", ".join(QUEUES)})
        priority = DEFAULT_PRIORITY if priority is None else priority
        if not (isinstance(priority, int) and 0 <= priority <= MAX_PRIORITY):
            raise UserError(_("Priority must be an integer from 0 to %d.") % MAX_PRIORITY)
        max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        if not (isinstance(max_retries, int) and max_retries >= 0):
            raise UserError(_("max_retries must be a non-negative integer."))
        if time_limit is not None and not (isinstance(time_limit, int) and time_limit > 0):
            raise UserError(_("time_limit must be a positive number of seconds."))
        if not all(isinstance(record_id, int) for record_id in record_ids):
            raise UserError(_("record_ids must be a list of integers."))
        eta = self._parse_eta(eta, countdown)
        try:
            encoded_args = encoding.dumps(list(args or ()), "args")
            encoded_kwargs = encoding.dumps(dict(kwargs or {}), "kwargs")
        except (TypeError, ValueError) as error:
            raise UserError(_("Arguments cannot be serialised: %s") % error)
        size_limit = option("max_arguments_size", 5 * 1024 * 1024)
        if len(encoded_args) + len(encoded_kwargs) > size_limit:
            raise UserError(_("The arguments take %(size)d bytes, more than "
                              "celery_max_arguments_size (%(limit)d): save large data in an "
                              "attachment and pass its id.")
                            % {"size": len(encoded_args) + len(encoded_kwargs), "limit": size_limit})
        # The job will run with the user's rights: refuse at once what they cannot even read.
        target = self.env[model_name].browse(record_ids)
        target.check_access_rights("read")
        if record_ids and self.env.uid != SUPERUSER_ID:
            target.check_access_rule("read")
        job_uuid = str(uuid.uuid4())
        task_id = new_task_id()
        description = description or (method.__doc__ or "").strip().split("\n")[0] \
            or "%s.%s" % (model_name, method_name)
        values = (job_uuid, description[:256], model_name, method_name, encoding.dumps(record_ids),
                  encoded_args, encoded_kwargs, self._encode_context(), self.env.uid,
                  self.env.user.company_id.id, queue, priority, "pending", eta, 0, max_retries,
                  task_id, identity_key or None, time_limit or 0, self.env.uid, self.env.uid)
        cr = self.env.cr
        cr.execute(
            "INSERT INTO celery_job (%s, create_date, write_date) VALUES (%s, %s, %s)"
            " ON CONFLICT (identity_key) WHERE identity_key IS NOT NULL"
            " AND state IN ('pending', 'enqueued', 'started') DO NOTHING RETURNING id"
            % (", ".join(_INSERT_COLUMNS), ", ".join(["%s"] * len(values)), _NOW, _NOW), values)
        row = cr.fetchone()
        if row is None:
            cr.execute("SELECT id FROM celery_job WHERE identity_key = %s"
                       " AND state IN ('pending', 'enqueued', 'started')", (identity_key,))
            return self.browse(cr.fetchone()[0])
        publish_after_commit(cr, [Dispatch(row[0], job_uuid, queue, priority, eta, task_id)])
        return self.browse(row[0])

    @api.model
    def _parse_eta(self, eta, countdown):
        if eta and countdown:
            raise UserError(_("Give eta or countdown, not both."))
        if countdown:
            return datetime.datetime.utcnow() + datetime.timedelta(seconds=countdown)
        if isinstance(eta, str):
            try:
                return fields.Datetime.from_string(eta)
            except ValueError:
                raise UserError(_("eta %r is not a datetime (YYYY-MM-DD HH:MM:SS, UTC).") % eta)
        if eta and not isinstance(eta, datetime.datetime):
            raise UserError(_("eta must be a datetime."))
        if eta and eta.tzinfo:
            eta = eta.astimezone(datetime.UTC).replace(tzinfo=None)
        return eta or None

    @api.model
    def _encode_context(self):
        """The enqueuing context the job runs with, less what JSON cannot carry."""
        try:
            return encoding.dumps(dict(self.env.context))
        except ValueError:
            return encoding.dumps(self._json_safe_context())

    def _json_safe_context(self):
        """The context less the entries JSON cannot carry (rare: looked at one by one)."""
        context = {}
        for key, value in self.env.context.items():
            try:
                encoding.dumps(value)
            except ValueError:
                continue
            context[key] = value
        return context

    def _dispatches(self):
        return [Dispatch(job.id, job.uuid, job.queue, job.priority,
                         job.eta and fields.Datetime.from_string(job.eta), job.celery_task_id)
                for job in self]

    # ------------------------------------------------------------------ buttons

    def _check_manager(self):
        if not (self.env.uid == SUPERUSER_ID or self.env.user.has_group(MANAGER_GROUP)):
            raise AccessError(_("Only job managers may change jobs."))
        self.check_access_rule("write")

    @api.multi
    def button_retry(self):
        """Run failed or cancelled jobs again, from a clean retry count."""
        self._check_manager()
        jobs = self.filtered(lambda job: job.state in ("failed", "cancelled"))
        for job in jobs:
            job.sudo().write({"state": "pending", "retry_count": 0, "eta": False,
                              "celery_task_id": new_task_id(), "date_done": False,
                              "date_enqueued": False})
        publish_after_commit(self.env.cr, jobs._dispatches())
        return True

    @api.multi
    def button_cancel(self):
        """Cancel jobs that have not started."""
        self._check_manager()
        self._set_ended("cancelled", ("pending", "enqueued"))
        return True

    @api.multi
    def button_done(self):
        """Mark jobs done by hand (for a job that ended outside this queue)."""
        self._check_manager()
        self._set_ended("done", ("pending", "enqueued", "failed", "cancelled"))
        return True

    def _set_ended(self, state, from_states):
        self.env.cr.execute(
            "UPDATE celery_job SET state = %s, date_done = " + _NOW + ", write_date = " + _NOW +
            ", write_uid = %s WHERE id = ANY(%s) AND state IN %s",
            (state, self.env.uid, self.ids, from_states))
        self.invalidate_cache(["state", "date_done"], self.ids)

    # ------------------------------------------------------------------ crons

    @api.model
    def _cron_sweep(self):
        """Publish jobs the broker never got or lost, and recover jobs of dead workers."""
        grace = _param(self.env, "sweep_grace_seconds", 30)
        republish_after = _param(self.env, "republish_after_seconds", 3600)
        window = option("eta_window", 300)
        # READ COMMITTED, on a cursor of its own: workers move these jobs on meanwhile, and
        # their updates must neither make the sweep fail nor be undone by it.
        with odoo.sql_db.db_connect(self.env.cr.dbname).cursor(serialized=False) as cr:
            # The lock is tried on old started jobs only (CASE fixes the order of evaluation):
            # taking it on a waiting job would make its worker drop the job's message.
            cr.execute("SELECT id, retry_count, max_retries FROM celery_job"
                       " WHERE state = 'started' AND CASE WHEN date_started < " + _NOW +
                       " - make_interval(secs => %s) THEN pg_try_advisory_xact_lock(%s, id)"
                       " ELSE false END", (grace, RUNNING_LOCK))
            dead = cr.fetchall()
            for job_id, retry_count, max_retries in dead:
                if retry_count >= max_retries:
                    _fail(cr, job_id, "The worker running this job died (killed, or out of "
                                      "memory), and its %d retries are used up." % max_retries)
            cr.execute(
                "UPDATE celery_job SET celery_task_id = md5(random()::text || id::text),"
                " retry_count = retry_count + (state = 'started')::int, state = 'pending'"
                " WHERE id = ANY(%(dead)s) AND state = 'started'"
                " OR state = 'pending' AND create_date < " + _NOW +
                "    - make_interval(secs => %(grace)s)"
                " OR state = 'enqueued' AND date_enqueued IS NULL"
                "    AND (eta IS NULL OR eta < " + _NOW + " + make_interval(secs => %(window)s))"
                " OR state = 'enqueued' AND date_enqueued < " + _NOW +
                "    - make_interval(secs => %(republish)s) AND (eta IS NULL OR eta < " + _NOW +
                ") RETURNING id, uuid, queue, priority, eta, celery_task_id",
                {"dead": [row[0] for row in dead], "grace": grace, "window": window,
                 "republish": republish_after})
            dispatches = [Dispatch(job_id, job_uuid, queue, priority,
                                   eta and fields.Datetime.from_string(eta), task_id)
                          for job_id, job_uuid, queue, priority, eta, task_id in cr.fetchall()]
            if dispatches:
                _logger.info("sweeper: publishing %d job(s) again", len(dispatches))
                publish_after_commit(cr, dispatches)
        return len(dispatches)

    @api.model
    def _cron_cleanup(self, batch_size=10000):
        """Delete done and cancelled jobs, and later failed ones, in committed batches."""
        deleted = 0
        for states, key, default in ((("done", "cancelled"), "done_retention_days", 7),
                                     (("failed",), "failed_retention_days", 30)):
            days = _param(self.env, key, default)
            while True:
                self.env.cr.execute(
                    "DELETE FROM celery_job WHERE id IN (SELECT id FROM celery_job"
                    " WHERE state IN %s AND date_done < " + _NOW + " - make_interval(days => %s)"
                    " LIMIT %s)", (states, days, batch_size))
                count = self.env.cr.rowcount
                deleted += count
                # Short transactions: never a long lock on the job table.
                self.env.cr.commit()  # pylint: disable=invalid-commit
                if count < batch_size:
                    break
        return deleted


# ---------------------------------------------------------------------- the worker's transitions
# The worker moves a job with plain SQL on its own cursor: cheap, and each step commits alone.

# Advisory lock class (first key) of running jobs; the second key is the job id. A worker holds
# it on its connection while the job runs, so a started job without it has lost its worker.
RUNNING_LOCK = 0x51C1
# A message this many seconds early waits for its eta; an earlier one is published again.
EARLY_TOLERANCE = 2.0


# What running a claimed job needs, read as the job is marked started.
_CLAIMED_COLUMNS = ("user_id", "model_name", "method_name", "record_ids", "args", "kwargs",
                    "context", "company_id", "retry_count", "max_retries", "queue", "priority",
                    "time_limit")


def _mark_started(extra_assignments, condition):
    """The UPDATE that marks a job started by a worker (parameters: hostname, pid, then
    those of ``extra_assignments`` and ``condition``), returning ``_CLAIMED_COLUMNS``."""
    return ("UPDATE celery_job SET state = 'started', date_started = " + _NOW + ","
            " worker_hostname = %s, worker_pid = %s, date_done = NULL" + extra_assignments +
            " WHERE " + condition + " RETURNING " + ", ".join(_CLAIMED_COLUMNS))


class ClaimedJob:
    """A job a worker has locked and marked started: what running it needs."""

    __slots__ = ("id", "uuid") + _CLAIMED_COLUMNS

    def __init__(self, job_id, job_uuid, row):
        self.id, self.uuid = job_id, job_uuid
        for name, value in zip(_CLAIMED_COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.time_limit = self.time_limit or option("job_time_limit", 3600)


def claim(cr, job_uuid, task_id, hostname, pid):
    """Lock the job and mark it started; None when the message must not run it.

    ``cr`` is the worker's control cursor in autocommit mode: each statement commits alone,
    and its connection holds no other job's lock. The caller must ``release`` a claimed job
    when it is done with it.
    """
    # The usual case, a job waiting for this very message, in one statement. Its snapshot
    # may predate the commit of a worker that ran the job meanwhile and then let go of the
    # lock; PostgreSQL then checks the condition again on the row as that worker left it
    # (READ COMMITTED), and the CASE takes the lock only on a row that still waits.
    cr.execute(_mark_started("", "uuid = %s AND CASE WHEN celery_task_id = %s"
                                 " AND state IN ('pending', 'enqueued') AND (eta IS NULL OR eta <= "
                                 + _NOW + ") THEN pg_try_advisory_lock(%s, id) ELSE false END")
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
        _logger.warning("job %s: no such job in database %s, message dropped", job_uuid, cr.dbname)
        return None
    job_id, locked = row
    if not locked:
        _logger.info("job %s is running in another worker, message dropped", job_uuid)
        return None
    row = _claim_unusual(cr, job_id, job_uuid, task_id, hostname, pid)
    return row and ClaimedJob(job_id, job_uuid, row)


def _claim_unusual(cr, job_id, job_uuid, task_id, hostname, pid):
    """``claim`` of a job, locked here (READ COMMITTED: what follows reads it as it is now),
    that is not simply waiting for this message: the columns of ``_CLAIMED_COLUMNS`` once
    it is marked started, or None (lock released) to drop it."""
    cr.execute("SELECT state, celery_task_id, retry_count, max_retries, queue, priority,"
               " extract(epoch from eta - " + _NOW + ") FROM celery_job WHERE id = %s",
               (job_id,))
    state, current_task_id, retry_count, max_retries, queue, priority, seconds_to_eta = \
        cr.fetchone()
    reason = republish = None
    if state not in WAITING_STATES:
        reason = "it is %s" % state
    elif current_task_id != task_id:
        reason = "the job was published again since (task %s)" % current_task_id
    elif seconds_to_eta and seconds_to_eta > EARLY_TOLERANCE:
        reason = "it is due in %.1f s; published again for then" % seconds_to_eta
        eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=float(seconds_to_eta))
        republish = Dispatch(job_id, job_uuid, queue, priority, eta, task_id)
    elif seconds_to_eta and seconds_to_eta > 0:
        # Celery's timer may hand over an eta task a little early: wait for its time.
        time.sleep(float(seconds_to_eta))
    elif state == "started":
        # Free lock on a started job: the worker that ran it died before it ended.
        if retry_count >= max_retries:
            _fail(cr, job_id, "The worker running this job died (killed, or out of memory), "
                              "and its %d retries are used up." % max_retries)
            cr.commit()
            reason = "its worker died and it has no retries left"
        else:
            retry_count += 1
            _logger.warning("job %s: its worker died mid-run; running it again (retry %d/%d)",
                            job_uuid, retry_count, max_retries)
    if reason:
        release(cr, job_id)
        _logger.info("job %s: message dropped, %s", job_uuid, reason)
        if republish:
            publish_committed(cr.dbname, [republish])
        return None
    cr.execute(_mark_started(", retry_count = %s", "id = %s"),
               (hostname, pid, retry_count, job_id))
    return cr.fetchone()


def release(cr, job_id):
    """Let go of a claimed job's lock (``cr`` is the control cursor, in autocommit mode)."""
    cr.execute("SELECT pg_advisory_unlock(%s, %s)", (RUNNING_LOCK, job_id))


def mark_done(cr, job, result, exec_time):
    """Record success, in the transaction that holds the job's work (the caller commits)."""
    _end(cr, job.id, "state = 'done', result = %s, exc_info = NULL, exec_time = %s",
         (result, exec_time))


def _end(cr, job_id, assignments, params):
    """End the job (``assignments``: SQL with ``params``) and tell its user through Odoo's
    bus when ``cr`` commits, if a web client of theirs is connected (it polled within
    Odoo's disconnection delay): nobody else would ever read the notice.

    One statement writes both; the wake-up of the longpolling process goes through a
    connection the worker keeps: Odoo's bus would read the job through the ORM and open a
    connection for each NOTIFY.
    """
    # The channel as Odoo's bus writes it: json_dump([dbname, "res.partner", partner_id]).
    channel_head = json_dump([cr.dbname, "res.partner"])[:-1] + ","
    cr.execute("WITH job AS (UPDATE celery_job SET " + assignments + ", date_done = " + _NOW +
               " WHERE id = %s RETURNING id, name, state, user_id)"
               " INSERT INTO bus_bus (channel, message, create_date, write_date, create_uid,"
               " write_uid) SELECT %s || u.partner_id || ']', json_build_object('type',"
               " 'celery.job', 'id', job.id, 'name', job.name, 'state', job.state)::text, " +
               _NOW + ", " + _NOW + ", %s, %s FROM job JOIN res_users u ON u.id = job.user_id"
               " JOIN bus_presence p ON p.user_id = job.user_id"
               " AND p.last_poll > " + _NOW + " - make_interval(secs => %s)"
               " RETURNING channel", params + (job_id, channel_head, SUPERUSER_ID, SUPERUSER_ID,
                                               DISCONNECTION_TIMER))
    row = cr.fetchone()
    if row:
        channel = json.loads(row[0])
        cr.after("commit", lambda: _wake_bus([channel]))


_bus_connection = None  # (pid, psycopg2 connection to the "postgres" database)


def _wake_bus(channels):
    """NOTIFY Odoo's longpolling process (it listens on the "postgres" database)."""
    global _bus_connection
    try:
        if _bus_connection is None or _bus_connection[0] != os.getpid() \
                or _bus_connection[1].closed:
            _name, info = odoo.sql_db.connection_info_for("postgres")
            connection = psycopg2.connect(**info)
            connection.autocommit = True
            _bus_connection = (os.getpid(), connection)
        with _bus_connection[1].cursor() as cr:
            cr.execute("NOTIFY imbus, %s", (json_dump(channels),))
    except psycopg2.Error:
        _bus_connection = None
        _logger.warning("could not wake the bus up", exc_info=True)


def mark_failed(cr, job, exc_info, exec_time):
    """Record a failure; the job's work was rolled back. Commits."""
    _fail(cr, job.id, exc_info, exec_time)
    cr.commit()


def _fail(cr, job_id, exc_info, exec_time=None):
    """Mark the job failed, its user told when ``cr`` commits."""
    _end(cr, job_id, "state = 'failed', exc_info = %s, exec_time = %s", (exc_info, exec_time))


def mark_retry(cr, job, exc_info, seconds=None):
    """Put a job back to wait for a retry after ``seconds`` (default: backoff). Commits.

    Returns the retry's Dispatch, for the caller to publish once it has released the job's
    lock: a retry delivered while the lock is held would be dropped as running elsewhere.
    """
    if seconds is None:
        seconds = retry_delay(job.retry_count)
    eta = datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)
    task_id = new_task_id()
    cr.execute("UPDATE celery_job SET state = 'enqueued', retry_count = retry_count + 1,"
               " eta = %s, exc_info = %s, celery_task_id = %s WHERE id = %s",
               (eta, exc_info, task_id, job.id))
    cr.commit()
    return Dispatch(job.id, job.uuid, job.queue, job.priority, eta, task_id)


def _param(env, key, default):
    return type(default)(env["ir.config_parameter"].sudo().get_param("queue_celery." + key, default))
