"""What differs with the Odoo version the running interpreter has installed, decided here only.

The same tests and bench run once under each virtualenv's Python: Odoo 11 (``.venv``) through
the Python 3.11 launcher of ``runtime/``, Odoo 18 (``.venv18``) through its own ``odoo``
command. The version is read from ``odoo/release.py`` without importing ``odoo``, which Odoo 11
cannot do before the launcher's patches. Each version's class below holds every difference
the tests meet (ORM calls, the admin's uid, the bus message's shape); tests stay one copy.
"""
import contextlib
import importlib.util
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"


@dataclass(frozen=True)
class OdooVersion:
    """How this repository runs one major version of Odoo, and what its API calls differ in."""

    major: int
    command: list  # the ``odoo`` command line, before its arguments
    addons: Path  # the folder holding this version's queue_celery addon
    realtime_port_option: str  # the port of the bus's separate process in prefork mode
    admin_uid: int  # the uid of the "admin" login (password "admin")
    launcher_patches: bool  # whether Odoo runs through runtime/'s Python 3.11 patches

    def realtime_port_args(self, port):
        """The server argument giving the longpolling (11) or websocket (18) process its port."""
        return ["%s=%d" % (self.realtime_port_option, port)]

    @contextlib.contextmanager
    def environment(self, dbname, uid=1, context=None):
        """An environment of ``uid`` (the superuser by default) on a new cursor of ``dbname``,
        committed when the block ends without an error."""
        import odoo

        with self._managed(), self.registry(dbname).cursor() as cr:
            yield odoo.api.Environment(cr, uid, context or {})


class Odoo11(OdooVersion):

    def import_odoo(self):
        """Import ``odoo`` into this process as its command line does; return the package."""
        sys.path.insert(0, str(RUNTIME))
        import py311compat

        return py311compat.import_odoo()

    def registry(self, dbname):
        import odoo

        return odoo.registry(dbname)

    def _managed(self):
        import odoo

        return odoo.api.Environment.manage()

    def as_user(self, records, user):
        """``records`` acting as ``user`` (a record or a uid), without the superuser's bypass."""
        return records.sudo(user)

    def invalidate(self, records):
        """Drop the cached values of ``records``: the next read goes to the database."""
        records.invalidate_cache()

    def web_client_polls(self, env):
        """What the web client of ``env``'s user does on the bus: mark them present."""
        env["bus.presence"].update(0)

    def run_due_crons(self, dbname):
        """Run the due crons of ``dbname`` in this process, as a server's cron thread does."""
        self.registry(dbname)["ir.cron"]._acquire_job(dbname)

    def bus_message(self, kind, payload):
        """A bus message as Odoo writes it: the type beside the payload's keys."""
        return dict(payload, type=kind)

    def bus_payload(self, message):
        """(type, payload) of a bus message."""
        payload = dict(message)
        return payload.pop("type"), payload


class Odoo18(OdooVersion):

    def import_odoo(self):
        import odoo

        return odoo

    def registry(self, dbname):
        from odoo.modules.registry import Registry

        return Registry(dbname)

    def _managed(self):
        return contextlib.nullcontext()  # environments need no management since Odoo 15

    def as_user(self, records, user):
        return records.with_user(user)

    def invalidate(self, records):
        records.invalidate_recordset()

    def web_client_polls(self, env):
        env["bus.presence"].update_presence(0, "user_id", env.uid)

    def run_due_crons(self, dbname):
        self.registry(dbname)["ir.cron"]._process_jobs(dbname)

    def bus_message(self, kind, payload):
        """A bus message as Odoo writes it: the payload wrapped beside its type."""
        return {"type": kind, "payload": payload}

    def bus_payload(self, message):
        return message["type"], message["payload"]


def installed_major():
    """The major version of the ``odoo`` package this interpreter would import."""
    package = importlib.util.find_spec("odoo").submodule_search_locations[0]
    return runpy.run_path(str(Path(package) / "release.py"))["version_info"][0]


VERSIONS = {
    11: Odoo11(11, [sys.executable, str(RUNTIME / "odoo")], ROOT / "addons", "--longpolling-port",
               admin_uid=1, launcher_patches=True),
    # Odoo 18's uid 1 is the archived __system__ user, which cannot log in.
    18: Odoo18(18, [str(Path(sys.executable).parent / "odoo")], ROOT / "addons-18.0",
               "--gevent-port", admin_uid=2, launcher_patches=False),
}
ODOO_VERSION = VERSIONS[installed_major()]
# Each version's virtualenv's Python (the Makefile's VENV_11, VENV_18), for a bench comparing them.
PYTHONS = {11: ROOT / ".venv" / "bin" / "python", 18: ROOT / ".venv18" / "bin" / "python"}
