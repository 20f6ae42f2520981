"""The embedded broker: Celery over Odoo's own PostgreSQL, no other server needed.

kombu's SQLAlchemy transport as is polls once a second, keeps every consumed
message forever and locks without SKIP LOCKED; this transport takes a message by
deleting it (one statement, SKIP LOCKED) and polls at ``celery_broker_polling_interval``.
"""
import logging
from json import loads
from queue import Empty

import psycopg2
from kombu.transport import TRANSPORT_ALIASES, sqlalchemy
from kombu.utils.encoding import bytes_to_str
from psycopg2 import sql
from sqlalchemy import create_engine, text

_logger = logging.getLogger(__name__)

TRANSPORT_ALIASES["odoopg"] = __name__ + ":Transport"
# Transport options that are not create_engine() arguments.
_NOT_ENGINE_OPTIONS = ("queue_tablename", "message_tablename", "polling_interval", "callback",
                       "errback", "max_retries", "interval_start", "interval_step",
                       "interval_max", "retry_errors", "visibility_timeout")


class Channel(sqlalchemy.Channel):
    _queue_ids = None

    def _engine_from_config(self):
        conninfo = self.connection.client
        options = {key: value for key, value in conninfo.transport_options.items()
                   if key not in _NOT_ENGINE_OPTIONS}
        return create_engine(conninfo.hostname, pool_pre_ping=True, **options)

    def _queue_id(self, queue):
        if self._queue_ids is None:
            self._queue_ids = {}
        if queue not in self._queue_ids:
            self._queue_ids[queue] = self._get_or_create(queue).id
        return self._queue_ids[queue]

    def _get(self, queue):
        table = self.message_tablename
        try:
            row = self.session.execute(text(
                f"DELETE FROM {table} WHERE id = (SELECT id FROM {table} WHERE queue_id = :queue"
                " AND visible ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING payload"), {"queue": self._queue_id(queue)}).first()
        finally:
            self.session.commit()
        if row is None:
            raise Empty()
        return loads(bytes_to_str(row[0]))


class Transport(sqlalchemy.Transport):
    Channel = Channel
    polling_interval = 0.02


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
