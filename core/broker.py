"""The embedded broker: Celery over Odoo's own PostgreSQL, no other server needed.

kombu's SQLAlchemy transport as is polls once a second, keeps every consumed message
forever, locks without SKIP LOCKED and forgets a message its consumer took and died with.
Here a consumer claims a message in one statement (SKIP LOCKED) and the message stays in
its table, reserved by the claiming PostgreSQL backend (pid and start time: pids are
reused) until a deadline, the visibility timeout. Acknowledging deletes it; rejecting it
with requeue, the consumer's channel closing (Celery's warm shutdown), the reserving
backend's end (its process died) or the deadline passing make it visible again, in its
place in the queue, as Redis and RabbitMQ give back what a consumer did not acknowledge.
Empty queues are polled every ``celery_broker_polling_interval``.
"""
import logging
import time
from json import loads
from queue import Empty

import psycopg2
from kombu.transport import TRANSPORT_ALIASES, sqlalchemy, virtual
from kombu.utils.encoding import bytes_to_str
from psycopg2 import sql
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

_logger = logging.getLogger(__name__)

TRANSPORT_ALIASES["odoopg"] = __name__ + ":Transport"
# Transport options that are not create_engine() arguments.
_NOT_ENGINE_OPTIONS = ("queue_tablename", "message_tablename", "polling_interval", "callback",
                       "errback", "max_retries", "interval_start", "interval_step",
                       "interval_max", "retry_errors", "visibility_timeout")
DEFAULT_VISIBILITY_TIMEOUT = 3600
# Seconds between two looks of a consumer for reservations whose backend or deadline is gone.
RESTORE_INTERVAL = 1.0

# The columns and indexes this transport adds to kombu's message table, also to one made
# by an earlier version; the reserved index is made last: its presence says all is there.
_UPGRADE = (
    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS reserved_pid integer,"
    " ADD COLUMN IF NOT EXISTS reserved_start timestamptz,"
    " ADD COLUMN IF NOT EXISTS reserved_until timestamptz",
    # What a claim scans: the waiting messages of a queue, in order.
    "CREATE INDEX IF NOT EXISTS {table}_waiting ON {table} (queue_id, id) WHERE visible",
    # What the look for lost reservations scans: the delivered, unacknowledged messages.
    "CREATE INDEX IF NOT EXISTS {table}_reserved ON {table} (reserved_until) WHERE NOT visible",
)
_FIRST_WAITING = ("SELECT id FROM {table} WHERE queue_id = :queue AND visible"
                  " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
_RESERVE = ("UPDATE {table} SET visible = false, reserved_pid = pg_backend_pid(),"
            " reserved_start = (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())),"
            " reserved_until = now() + make_interval(secs => :timeout)"
            " WHERE id = (" + _FIRST_WAITING + ") RETURNING id, payload")
_TAKE = "DELETE FROM {table} WHERE id = (" + _FIRST_WAITING + ") RETURNING id, payload"
_DELETE = "DELETE FROM {table} WHERE id = :id"


def _unreserve(which):
    """The statement making visible again the reserved messages that ``which`` selects."""
    return ("UPDATE {table} SET visible = true, reserved_pid = NULL, reserved_start = NULL,"
            " reserved_until = NULL WHERE id IN (SELECT id FROM {table} m WHERE NOT visible"
            " AND " + which + " FOR UPDATE SKIP LOCKED)")


_RESTORE = _unreserve("id = ANY(:ids)")
_RESTORE_LOST = _unreserve(
    "(reserved_until < now() OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
    " WHERE a.pid = m.reserved_pid"
    # Another role's backend_start is hidden (NULL): its pid alone keeps the reservation.
    " AND (a.backend_start = m.reserved_start OR a.backend_start IS NULL)))")


class QoS(virtual.QoS):
    """Delivered messages stay reserved in the table until acknowledged or given back.

    Delivery tags are the messages' row ids. Celery acknowledges from its pool's result
    thread: statements here run on a pooled connection, never on the channel's session.
    """

    _next_restore = 0.0

    def _execute(self, statement, params):
        engine, _session = self.channel._open()
        with engine.begin() as conn:
            conn.execute(text(statement.format(table=self.channel.message_tablename)), params)

    def ack(self, delivery_tag):
        self._execute(_DELETE, {"id": delivery_tag})
        super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        if requeue:
            self._execute(_RESTORE, {"ids": [delivery_tag]})
        else:
            self._execute(_DELETE, {"id": delivery_tag})
        super().ack(delivery_tag)  # virtual's reject would publish a copy

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
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_cancel(self, consumer_tag):
        self._no_ack_queues.discard(self._tag_to_queue.get(consumer_tag))
        return super().basic_cancel(consumer_tag)

    def basic_get(self, queue, no_ack=False, **kwargs):
        if not no_ack:
            return super().basic_get(queue, **kwargs)
        try:
            return self.Message(self._claim(queue, _TAKE), channel=self)
        except Empty:
            return None

    def _get(self, queue):
        self.qos.restore_visible()
        return self._claim(queue, _TAKE if queue in self._no_ack_queues else _RESERVE)

    def _claim(self, queue, statement):
        try:
            row = self.session.execute(
                text(statement.format(table=self.message_tablename)),
                {"queue": self._queue_id(queue), "timeout": self.visibility_timeout}).first()
        finally:
            self.session.commit()
        if row is None:
            raise Empty()
        payload = loads(bytes_to_str(row[1]))
        payload["properties"]["delivery_tag"] = row[0]
        return payload


class Transport(sqlalchemy.Transport):
    Channel = Channel
    polling_interval = 0.02


_upgraded = set()  # (engine, table) of message tables with this module's columns and indexes


def _upgrade(engine, table):
    """Add this module's columns and indexes to ``table`` where they are missing."""
    with engine.begin() as conn:
        if conn.execute(text("SELECT to_regclass(:index)"), {"index": table + "_reserved"}).scalar():
            return
        # Processes starting together would otherwise race to create the same index.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:table))"), {"table": table})
        for statement in _UPGRADE:
            conn.execute(text(statement.format(table=table)))


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
