"""The embedded broker: Celery over Odoo's own PostgreSQL, no other server needed.

kombu's SQLAlchemy transport as is polls once a second, keeps every consumed message
forever, locks without SKIP LOCKED and forgets a message its consumer took and died with.
Here a consumer claims a message in one statement (SKIP LOCKED) and the message stays in
its table, reserved by the claiming PostgreSQL backend (pid and start time: pids are
reused) until a deadline, the visibility timeout. Acknowledging deletes it; rejecting it
with requeue, the consumer's channel closing (Celery's warm shutdown), the reserving
backend's end (its process died) or the deadline passing make it visible again, in its
place in the queue, as Redis and RabbitMQ give back what a consumer did not acknowledge.

A queue's messages are delivered by priority (0 first), then in the order they were put.
Putting a message, or making one visible again, sends a PostgreSQL NOTIFY on the queue's
channel; a consumer with nothing to take waits on its LISTEN connection's socket, so it
wakes as the message commits. It also looks again every ``celery_broker_polling_interval``
without a notification (one lost with a broken connection, a message put by an earlier
version), and as soon as one of its own deliveries is acknowledged (its prefetch window
opens again). A queue found empty is not claimed from again until its next notification
or look without one: a worker on several queues costs no round trip per empty queue.
"""
import contextlib
import logging
import os
import select
import threading
import time
from json import dumps, loads
from queue import Empty

import psycopg2
from kombu.transport import TRANSPORT_ALIASES, sqlalchemy, virtual
from kombu.utils.encoding import bytes_to_str
from psycopg2 import sql
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

_logger = logging.getLogger(__name__)

TRANSPORT_ALIASES["odoopg"] = __name__ + ":Transport"
# Transport options that are not create_engine() arguments.
_NOT_ENGINE_OPTIONS = ("queue_tablename", "message_tablename", "polling_interval", "callback",
                       "errback", "max_retries", "interval_start", "interval_step",
                       "interval_max", "retry_errors", "visibility_timeout")
DEFAULT_VISIBILITY_TIMEOUT = 3600
# Seconds between two looks of a consumer for reservations whose backend or deadline is gone.
RESTORE_INTERVAL = 1.0

# Queue tables churn: each row is rewritten or deleted within seconds of its insert. Their
# vacuum and statistics are asked for once 1% of their rows changed, not PostgreSQL's 20%:
# a million waiting jobs would otherwise leave 200,000 dead rows in the statements' way
# before the first vacuum.
QUEUE_TABLE_OPTIONS = ("autovacuum_vacuum_scale_factor=0.01",
                       "autovacuum_analyze_scale_factor=0.01")

# The columns and indexes this transport adds to kombu's message table, also to one made
# by an earlier version; the ordered index is made last: its presence says all is there.
_UPGRADE = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS reserved_pid integer,"
    " ADD COLUMN IF NOT EXISTS reserved_start timestamptz,"
    " ADD COLUMN IF NOT EXISTS reserved_until timestamptz,"
    " ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0",
    # What the look for lost reservations scans: the delivered, unacknowledged messages.
    "CREATE INDEX IF NOT EXISTS {table}_reserved ON {table} (reserved_until) WHERE NOT visible",
    # An earlier version's index of the waiting messages, in id order only.
    "DROP INDEX IF EXISTS {table}_waiting",
    # What a claim scans: the waiting messages of a queue, in the order they are delivered.
    "CREATE INDEX IF NOT EXISTS {table}_ordered ON {table} (queue_id, priority, id)"
    " WHERE visible",
)
_SENTINEL_INDEX = "_ordered"
# kombu's model numbers messages from its sequence, on the client side; they are numbered
# in the order given, and each queue is notified once.
_PUT = ("WITH put AS (INSERT INTO {table} (id, queue_id, payload, priority, visible, version)"
        " SELECT nextval('message_id_sequence'), queue_id, payload, priority, true, 1"
        " FROM unnest(CAST(:queues AS integer[]), CAST(:payloads AS text[]),"
        " CAST(:priorities AS smallint[])) AS m(queue_id, payload, priority)"
        " RETURNING queue_id)"
        " SELECT pg_notify(:prefix || queue_id, '') FROM (SELECT DISTINCT queue_id FROM put) q")
_FIRST_WAITING = ("SELECT id FROM {table} WHERE queue_id = :queue AND visible"
                  " ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED")
_RESERVE = ("UPDATE {table} SET visible = false, reserved_pid = pg_backend_pid(),"
            " reserved_start = :backend_start,"
            " reserved_until = now() + make_interval(secs => :timeout)"
            " WHERE id = (" + _FIRST_WAITING + ") RETURNING id, payload")
_TAKE = "DELETE FROM {table} WHERE id = (" + _FIRST_WAITING + ") RETURNING id, payload"
_DELETE = "DELETE FROM {table} WHERE id = :id"


def _unreserve(which):
    """The statement making visible again the reserved messages that ``which`` selects, and
    notifying their queues' consumers."""
    return ("WITH restored AS (UPDATE {table} SET visible = true, reserved_pid = NULL,"
            " reserved_start = NULL, reserved_until = NULL WHERE id IN (SELECT id FROM {table} m"
            " WHERE NOT visible AND " + which + " FOR UPDATE SKIP LOCKED) RETURNING queue_id)"
            " SELECT pg_notify(:prefix || queue_id, '') FROM (SELECT DISTINCT queue_id"
            " FROM restored) queues")


_RESTORE = _unreserve("id = ANY(:ids)")
_RESTORE_LOST = _unreserve(
    "(reserved_until < now() OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
    " WHERE a.pid = m.reserved_pid"
    # Another role's backend_start is hidden (NULL): its pid alone keeps the reservation.
    " AND (a.backend_start = m.reserved_start OR a.backend_start IS NULL)))")


class _Statements:
    """A connection of its own on which each statement commits alone: one round trip a
    statement, where a pooled session costs a ping, BEGIN and COMMIT more. Threads take
    turns on it; a connection found broken is replaced once, then the error is raised.

    Not ``durable``, its commits do not wait for the disk: for claims and acknowledgements,
    which a crash of PostgreSQL may only undo (a message given again, that its job's claim
    drops if the job ran), never turn into a loss. Puts are durable."""

    def __init__(self, channel, durable):
        self.channel, self.durable = channel, durable
        self._connection = self._backend_start = None
        self._lock = threading.Lock()

    def execute(self, statement, params):
        """Run ``statement`` (formatted with the message table); its rows, if any. Its
        parameters may name the connection's ``backend_start`` too."""
        query = text(statement.format(table=self.channel.message_tablename))
        params = dict(params, prefix=self.channel.notify_prefix)
        with self._lock:
            retried = False
            while True:
                try:
                    if self._connection is None:
                        self._connect()
                    result = self._connection.execute(
                        query, dict(params, backend_start=self._backend_start))
                    rows = result.fetchall() if result.returns_rows else []
                    self._connection.commit()
                    return rows
                except DBAPIError as error:
                    self.close()
                    if retried or not error.connection_invalidated:
                        raise
                    retried = True

    def _connect(self):
        engine, _session = self.channel._open()
        self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Said either way: the engine's pool lends its connections again as they were left.
        self._connection.execute(text("RESET synchronous_commit" if self.durable
                                      else "SET synchronous_commit = off"))
        # What tells this backend from a later one with the same pid (read once: the
        # activity snapshot that holds it copies every backend's entry).
        self._backend_start = self._connection.execute(text(
            "SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())")).scalar()

    def close(self):
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


class QoS(virtual.QoS):
    """Delivered messages stay reserved in the table until acknowledged or given back.

    Delivery tags are the messages' row ids. Celery acknowledges from its pool's result
    thread: these statements run on a connection of their own, not on the channel's.
    """

    _next_restore = 0.0

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        self.statements = _Statements(channel, durable=False)

    def _execute(self, statement, params):
        self.statements.execute(statement, params)

    def ack(self, delivery_tag):
        self._execute(_DELETE, {"id": delivery_tag})
        super().ack(delivery_tag)
        self._wake_up()

    def _wake_up(self):
        """The prefetch window has room again: the waiting consumer looks at once."""
        transport = self.channel.connection
        if transport is not None:  # None once the channel is closed
            transport.wake_up()

    def reject(self, delivery_tag, requeue=False):
        if requeue:
            self._execute(_RESTORE, {"ids": [delivery_tag]})
        else:
            self._execute(_DELETE, {"id": delivery_tag})
        super().ack(delivery_tag)  # virtual's reject would publish a copy
        self._wake_up()

    def restore_unacked(self):
        self._flush()
        tags = list(self._delivered)
        self._delivered.clear()
        if tags:
            try:
                self._execute(_RESTORE, {"ids": tags})
            except Exception:
                # Nothing is lost: they come back when this process's backends end.
                _logger.warning("could not give back %d unacknowledged message(s)", len(tags),
                                exc_info=True)
        return []

    def restore_visible(self, *args, **kwargs):
        """Give back the messages whose reserving backend ended or whose deadline passed."""
        now = time.monotonic()
        if now >= self._next_restore:
            self._next_restore = now + RESTORE_INTERVAL
            self._execute(_RESTORE_LOST, {})


class Channel(sqlalchemy.Channel):
    QoS = QoS
    _queue_ids = None

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        self.visibility_timeout = float(connection.client.transport_options.get(
            "visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))
        # Queues consumed without acknowledgements: a message taken from them is deleted.
        self._no_ack_queues = set()
        # A queue's NOTIFY channel is this prefix and its id.
        self.notify_prefix = self.message_tablename + "_"
        self._listened = {}     # the NOTIFY channels of the queues consumed: their queues
        self._listener = None   # the psycopg2 connection listening to them, opened lazily
        # Queues found empty since their last notification: not claimed from again (a round
        # trip each) until one comes, or until the next look without one (polling).
        self._empty = set()
        self._puts = _Statements(self, durable=True)
        self._claims = _Statements(self, durable=False)

    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {key: value for key, value in conninfo.transport_options.items()
                   if key not in _NOT_ENGINE_OPTIONS}
        return create_engine(conninfo.hostname, pool_pre_ping=True, **options)

    def _open(self):
        engine, session = super()._open()
        if (engine, self.message_tablename) not in _upgraded:
            _upgrade(engine, self.message_tablename)
            _upgraded.add((engine, self.message_tablename))
        return engine, session

    def _get_or_create(self, queue):
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            # Another process inserted the queue between kombu's lookup and its insert.
            self.session.rollback()
            return super()._get_or_create(queue)

    def _queue_id(self, queue):
        if self._queue_ids is None:
            self._queue_ids = {}
        if queue not in self._queue_ids:
            self._queue_ids[queue] = self._get_or_create(queue).id
        return self._queue_ids[queue]

    def basic_consume(self, queue, no_ack, *args, **kwargs):
        if no_ack:
            self._no_ack_queues.add(queue)
        self._listen(self.notify_prefix + str(self._queue_id(queue)), queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_cancel(self, consumer_tag):
        self._no_ack_queues.discard(self._tag_to_queue.get(consumer_tag))
        return super().basic_cancel(consumer_tag)

    def close(self):
        self._close_listener()
        super().close()  # gives back what it holds first
        self._puts.close()
        self._claims.close()
        if self._qos is not None:
            self._qos.statements.close()

    def _listen(self, name, queue):
        self._listened[name] = queue
        if self._listener is not None:
            self._send_listen([name])

    def _send_listen(self, names):
        with self._listener.cursor() as cr:
            for name in names:
                cr.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))

    def listener_fileno(self):
        """The socket of this channel's LISTEN connection, opened when missing; None when
        it consumes nothing or PostgreSQL cannot be reached (its consumer then polls)."""
        if not self._listened:
            return None
        if self._listener is None:
            engine, _session = self._open()
            try:
                args, kwargs = engine.dialect.create_connect_args(engine.url)
                self._listener = engine.dialect.connect(*args, **kwargs)
                self._listener.autocommit = True
                self._send_listen(self._listened)
            except psycopg2.Error:
                _logger.warning("cannot listen to the embedded broker, polling",
                                exc_info=True)
                self._close_listener()
                return None
        return self._listener.fileno()

    def consume_notifications(self):
        """Read what woke this channel's listener: its queues have messages again (the next
        wait waits for new ones)."""
        try:
            self._listener.poll()
            for notification in self._listener.notifies:
                self._empty.discard(self._listened.get(notification.channel))
            self._listener.notifies.clear()
        except psycopg2.Error:
            _logger.warning("the embedded broker's LISTEN connection broke", exc_info=True)
            self._close_listener()

    def forget_empty_queues(self):
        """Claim from every queue again (a look without a notification)."""
        self._empty.clear()

    def _close_listener(self):
        self._empty.clear()  # polling from now on
        if self._listener is not None:
            with contextlib.suppress(psycopg2.Error):
                self._listener.close()
            self._listener = None

    def create_publish_batch(self, max_size):
        """What kombu's ``Producer.batch()`` publishes through (see _PutBatch)."""
        return _PutBatch(self, max_size)

    def _put(self, queue, message, _publish_batch=None, **kwargs):
        row = (self._queue_id(queue), dumps(message), message["properties"].get("priority") or 0)
        if _publish_batch is None:
            self.put_rows([row])
        else:
            _publish_batch.rows.append(row)

    def put_rows(self, rows):
        """Put the messages ``rows`` (queue id, payload, priority) in one statement."""
        queues, payloads, priorities = zip(*rows, strict=True)
        self._puts.execute(_PUT, {"queues": list(queues), "payloads": list(payloads),
                                  "priorities": list(priorities)})

    def basic_get(self, queue, no_ack=False, **kwargs):
        self._empty.discard(queue)  # asked for: looked at, whatever was found before
        if not no_ack:
            return super().basic_get(queue, **kwargs)
        try:
            return self.Message(self._claim(queue, _TAKE), channel=self)
        except Empty:
            return None

    def _get(self, queue):
        self.qos.restore_visible()
        if queue in self._empty:
            raise Empty()
        try:
            return self._claim(queue, _TAKE if queue in self._no_ack_queues else _RESERVE)
        except Empty:
            if self._listener is not None:  # its next put notifies it
                self._empty.add(queue)
            raise

    def _claim(self, queue, statement):
        rows = self._claims.execute(statement, {"queue": self._queue_id(queue),
                                                "timeout": self.visibility_timeout})
        if not rows:
            raise Empty()
        row = rows[0]
        payload = loads(bytes_to_str(row[1]))
        payload["properties"]["delivery_tag"] = row[0]
        return payload


class _PutBatch:
    """The messages published in a kombu producer batch (``Producer.batch()``), put in
    one statement as the batch flushes: all of them, or none when it fails."""

    def __init__(self, channel, max_size):
        self.channel, self.max_size = channel, max_size
        self.rows = []  # filled by the channel's _put

    def publish(self, message, **kwargs):
        result = self.channel.basic_publish(message, _publish_batch=self, **kwargs)
        if len(self.rows) >= self.max_size:
            self.flush()
        return result

    def flush(self):
        rows, self.rows = self.rows, []
        if rows:
            self.channel.put_rows(rows)

    def discard(self):
        self.rows = []

    close = discard


class Transport(sqlalchemy.Transport):
    """kombu's virtual transport, waiting on its channels' LISTEN connections (and on its
    own acknowledgements) instead of sleeping between two looks at the queues."""

    Channel = Channel
    polling_interval = 1.0

    # (read, write) ends of a pipe made by the first wait: an acknowledgement (in Celery's
    # pool thread) writes to it, the waiting loop reads.
    _wake_pipe = None

    def wake_up(self):
        if self._wake_pipe is not None:
            with contextlib.suppress(OSError):  # full: the loop wakes anyway
                os.write(self._wake_pipe[1], b"x")

    def drain_events(self, connection, timeout=None):
        started = time.monotonic()
        while True:
            try:
                return self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                pass
            wait = self.polling_interval
            if timeout is not None:
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError()
                wait = min(wait, left)
            self._wait(wait)

    def _wait(self, seconds):
        """Until a notification, an acknowledgement or ``seconds`` passed."""
        if self._wake_pipe is None:
            self._wake_pipe = os.pipe()
            for fileno in self._wake_pipe:
                os.set_blocking(fileno, False)
        wake_read = self._wake_pipe[0]
        listeners = {}
        for channel in self.channels:
            fileno = channel.listener_fileno()
            if fileno is not None:
                listeners[fileno] = channel
        ready, _, _ = select.select([wake_read, *listeners], [], [], seconds)
        if not ready:
            for channel in self.channels:
                channel.forget_empty_queues()
        for fileno in ready:
            if fileno == wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_read, 512):
                        pass
            else:
                listeners[fileno].consume_notifications()

    def close_connection(self, connection):
        super().close_connection(connection)
        pipe, self._wake_pipe = self._wake_pipe, None
        for fileno in pipe or ():
            os.close(fileno)


_upgraded = set()  # (engine, table) of message tables with this module's columns and options


def _upgrade(engine, table):
    """Add this module's columns, indexes and options to ``table`` where they are missing."""
    with engine.begin() as conn:
        indexed, optioned = conn.execute(text(
            "SELECT to_regclass(:index) IS NOT NULL,"
            " coalesce(reloptions @> CAST(:options AS text[]), false)"
            " FROM pg_class WHERE oid = to_regclass(:table)"),
            {"index": table + _SENTINEL_INDEX, "table": table,
             "options": list(QUEUE_TABLE_OPTIONS)}).one()
        if indexed and optioned:
            return
        # Processes starting together would otherwise race to create the same index.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:table))"), {"table": table})
        for statement in () if indexed else _UPGRADE:
            conn.execute(text(statement.format(table=table)))
        # Options alone wait for no reader or writer of the table (a SHARE UPDATE EXCLUSIVE
        # lock), where adding a column waits for every open transaction that read it.
        conn.execute(text("ALTER TABLE %s SET (%s)" % (table, ", ".join(QUEUE_TABLE_OPTIONS))))


def ensure_database(dsn_kwargs, dbname):
    """Create the broker's database on Odoo's PostgreSQL when it is missing."""
    conn = psycopg2.connect(dbname="postgres", **dsn_kwargs)
    try:
        conn.autocommit = True
        with conn.cursor() as cr:
            cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if not cr.fetchone():
                _logger.info("creating the embedded broker's database %s", dbname)
                try:
                    cr.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                except psycopg2.errors.DuplicateDatabase:
                    _logger.info("another process created %s first", dbname)
    finally:
        conn.close()
