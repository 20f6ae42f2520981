"""What one worker process keeps from job to job, in one object.

Created when a Celery worker process starts (``worker_process_init`` in a prefork pool's
child, ``worker_init`` in a solo worker) and closed when it stops; ``current()`` opens
one for a process that runs jobs without Celery (tests running a job in-process).
"""
import logging
import os
import time
from contextlib import suppress

import psycopg2

import odoo

from .. import odoo_version

_logger = logging.getLogger(__name__)

# A running job sends at most one progress message on the bus per this many seconds.
PROGRESS_BUS_INTERVAL = 1.0
# The registry of a database is checked for changes (module updates, caches) this often.
SIGNALING_INTERVAL = 1.0


class WorkerProcess:
    """The cursors, connections and clocks of this worker process."""

    def __init__(self):
        self.pid = os.getpid()
        self._cursors = {}             # dbname: (control cursor, job cursor)
        self._signaling_checked = {}   # dbname: time.monotonic() of the last check
        self._bus_connection = None
        self._progress_sent = {}       # job id: time.monotonic() of its last bus message
        self.running_job = None        # (dbname, job id) while a job runs here

    def registry(self, dbname):
        """The registry of ``dbname``, checked for changes once a second."""
        registry = odoo_version.registry(dbname)
        if time.monotonic() - self._signaling_checked.get(dbname, 0) >= SIGNALING_INTERVAL:
            registry = registry.check_signaling()
            self._signaling_checked[dbname] = time.monotonic()
        return registry

    def cursors(self, dbname, registry):
        """This process's two cursors on ``dbname``, kept from job to job (a new cursor
        costs a round trip that resets its connection).

        The control cursor moves the job's state and its connection holds the job's lock
        while it runs. It is in autocommit mode, each statement committing alone, with
        asynchronous commits: a 'started' that a crash of PostgreSQL loses leaves the job
        waiting, to run again, and the job's own durable commit takes the earlier ones to
        disk with it (the WAL is written in order). The job's work runs on the other, an
        ordinary Odoo cursor.
        """
        if dbname not in self._cursors:
            control = odoo_version.autocommit_cursor(dbname)
            control.execute("SET synchronous_commit = off")
            self._cursors[dbname] = (control, registry.cursor())
        return self._cursors[dbname]

    def forget_cursors(self, dbname):
        """Close the cursors on ``dbname``, with any lock or transaction they hold."""
        for cr in self._cursors.pop(dbname, ()):
            with suppress(psycopg2.Error):
                cr.rollback()
                cr.execute("SELECT pg_advisory_unlock_all()")
            with suppress(psycopg2.Error):
                cr.close()

    def wake_bus(self, channels):
        """Tell Odoo's bus that notices for ``channels`` were committed."""
        if not channels:
            return
        try:
            if self._bus_connection is None or self._bus_connection.closed:
                _name, info = odoo.sql_db.connection_info_for(odoo_version.BUS_DATABASE)
                self._bus_connection = psycopg2.connect(**info)
                self._bus_connection.autocommit = True
            odoo_version.wake_bus(self._bus_connection, channels)
        except psycopg2.Error:
            self._bus_connection = None
            _logger.warning("could not wake the bus up", exc_info=True)

    def progress_message_due(self, job_id, final):
        """Whether a progress message of ``job_id`` goes on the bus now (rate limited)."""
        now = time.monotonic()
        if not final and now - self._progress_sent.get(job_id, 0) < PROGRESS_BUS_INTERVAL:
            return False
        if len(self._progress_sent) > 10000:
            self._progress_sent.clear()
        self._progress_sent[job_id] = now
        return True

    def close(self):
        for dbname in list(self._cursors):
            self.forget_cursors(dbname)
        if self._bus_connection is not None:
            with suppress(psycopg2.Error):
                self._bus_connection.close()
            self._bus_connection = None


_current = None


def open_process(**_signal_kwargs):
    """Start this process's state (a receiver of Celery's process start signals)."""
    global _current
    close_process()
    _current = WorkerProcess()


def close_process(**_signal_kwargs):
    """Close this process's state (a receiver of Celery's process stop signals)."""
    global _current
    if _current is not None and _current.pid == os.getpid():
        _current.close()
    _current = None


def running_job():
    """(dbname, job id) of the job running in this process, or None (not a worker, or idle)."""
    if _current is None or _current.pid != os.getpid():
        return None
    return _current.running_job


def current():
    """This process's state; a forked child that inherited its parent's opens its own."""
    if _current is None or _current.pid != os.getpid():
        open_process()
    return _current
