"""The job store on one connection, with no worker: what a statement leaves in the tables."""
import contextlib

import psycopg2
import pytest


@pytest.fixture
def cursor(database):
    """A psycopg2 cursor on a connection of its own to ``database``, rolled back at the end."""
    with contextlib.closing(psycopg2.connect(dbname=database)) as conn:
        with conn.cursor() as cr:
            yield cr
        conn.rollback()


@pytest.fixture
def store(cursor):
    """``cursor`` with no advisory lock left on its connection at the end."""
    yield cursor
    cursor.execute("SELECT pg_advisory_unlock_all()")
