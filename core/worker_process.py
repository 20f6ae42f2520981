"""What one worker process keeps from job to job, in one object.

Created when a Celery worker process starts (``worker_process_init`` in a prefork pool's
child, ``worker_init`` in a solo worker) and closed when it stops; ``current()`` opens
one for a process that runs jobs without Celery (tests running a job in-process).
"""
import logging
import os
import select
import threading
import time
from contextlib import contextmanager, suppress

import psycopg2

import odoo

from .. import odoo_version
from . import jobstore
from .exceptions import JobStopped

_logger = logging.getLogger(__name__)

# A running job sends at most one progress message on the bus per this many seconds.
PROGRESS_BUS_INTERVAL = 1.0
# The registry of a database is checked for changes (module updates, caches) this often.
SIGNALING_INTERVAL = 1.0
# A running job's stop request is also looked up this often, in case its NOTIFY was missed
# (the listening connection was lost, or a connection pooler drops LISTEN).
STOP_CHECK_INTERVAL = 5.0


class WorkerProcess:
    """The cursors, connections and clocks of this worker process."""

    def __init__(self):
        self.pid = os.getpid()
        self._cursors = {}             # dbname: (control cursor, job cursor)
        self._signaling_checked = {}   # dbname: time.monotonic() of the last check
        self._bus_connection = None
        self._progress_sent = {}       # job id: time.monotonic() of its last bus message
        self._stop_listeners = {}      # dbname: StopListener
        self._lock = threading.Lock()  # the two below, shared with the stop listeners
        self._running = None           # (dbname, job id, task id, interrupt) of the job running
        self._stops_heard = set()      # (dbname, job id, task id) heard before their job ran

    @property
    def running_job(self):
        """(dbname, job id) of the job running here, or None."""
        running = self._running
        return running and running[:2]

    @contextmanager
    def running(self, dbname, job_id, task_id, interrupt):
        """Run the block as the run ``task_id`` of the job, claimed: a stop request of that
        run, heard on ``dbname``'s stop listener or looked up, calls ``interrupt`` with
        JobStopped, in the listener's thread."""
        with self._lock:
            self._running = (dbname, job_id, task_id, interrupt)
            heard = (dbname, job_id, task_id) in self._stops_heard
            self._stops_heard.clear()
        if heard:
            interrupt(JobStopped("stop requested"))
        if dbname not in self._stop_listeners:
            self._stop_listeners[dbname] = StopListener(self, dbname)
        try:
            yield
        finally:
            with self._lock:
                self._running = None

    def stop_requested(self, dbname, job_id, task_id):
        """A stop of the job's run ``task_id`` was requested: interrupt it if it runs here,
        or as soon as it does (its NOTIFY may come before its worker says it runs it)."""
        with self._lock:
            running = self._running
            if running is None or running[:3] != (dbname, job_id, task_id):
                self._stops_heard.add((dbname, job_id, task_id))
                return
        running[3](JobStopped("stop requested"))

    def running_run(self, dbname):
        """(job id, task id) of the job running here on ``dbname``, or None."""
        running = self._running
        return running[1:3] if running and running[0] == dbname else None

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
            for cr in self._cursors[dbname]:
                jobstore.keep_plans(cr)
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
        for listener in self._stop_listeners.values():
            listener.close()
        self._stop_listeners.clear()
        for dbname in list(self._cursors):
            self.forget_cursors(dbname)
        if self._bus_connection is not None:
            with suppress(psycopg2.Error):
                self._bus_connection.close()
            self._bus_connection = None


class StopListener:
    """The stop requests of one database that reach this process: a thread LISTENing on
    jobstore.STOP_CHANNEL on a connection of its own, which tells the process of each, and
    looks the running job's request up every STOP_CHECK_INTERVAL in case one was missed.
    One connection per process and database: no worker polls the job table per job."""

    def __init__(self, process, dbname):
        self.process, self.dbname = process, dbname
        self._connection = None
        self._closed = False
        threading.Thread(target=self._listen, name="queue_celery stops of %s" % dbname,
                         daemon=True).start()

    def _connect(self):
        _name, info = odoo.sql_db.connection_info_for(self.dbname)
        self._connection = psycopg2.connect(**info)
        self._connection.autocommit = True
        with self._connection.cursor() as cr:
            cr.execute("LISTEN " + jobstore.STOP_CHANNEL)

    def _listen(self):
        checked = 0.0
        while not self._closed:
            try:
                if self._connection is None:
                    self._connect()
                    checked = 0.0  # a look-up at once: what was requested before the LISTEN
                if time.monotonic() - checked >= STOP_CHECK_INTERVAL:
                    self._check()
                    checked = time.monotonic()
                if select.select([self._connection], [], [], STOP_CHECK_INTERVAL)[0]:
                    self._connection.poll()
                    while self._connection.notifies:
                        job_id, task_id = self._connection.notifies.pop(0).payload.split(" ", 1)
                        self.process.stop_requested(self.dbname, int(job_id), task_id)
            except (psycopg2.Error, OSError) as error:
                if self._closed:
                    return
                _logger.warning("stop requests of %s: %s; listening again in %s s",
                                self.dbname, error, STOP_CHECK_INTERVAL)
                self._disconnect()
                time.sleep(STOP_CHECK_INTERVAL)

    def _check(self):
        run = self.process.running_run(self.dbname)
        if run:
            with self._connection.cursor() as cr:
                if jobstore.stop_requested(cr, *run):
                    self.process.stop_requested(self.dbname, *run)

    def _disconnect(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(psycopg2.Error):
                connection.close()

    def close(self):
        self._closed = True
        self._disconnect()


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
