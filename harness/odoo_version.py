"""What differs with the Odoo version the running interpreter has installed, decided here only.

The same tests and bench run once under each virtualenv's Python: Odoo 11 (``.venv``) through
the Python 3.11 launcher of ``runtime/``, Odoo 18 (``.venv18``) through its own ``odoo``
command. The version is read from ``odoo/release.py`` without importing ``odoo``, which Odoo 11
cannot do before the launcher's patches.
"""
import importlib.util
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime"


@dataclass(frozen=True)
class OdooVersion:
    """How this repository runs one major version of Odoo."""

    major: int
    command: list  # the ``odoo`` command line, before its arguments
    addons: Path  # the folder holding this version's queue_celery addon
    realtime_port_option: str  # the port of the bus's separate process in prefork mode

    def realtime_port_args(self, port):
        """The server argument giving the longpolling (11) or websocket (18) process its port."""
        return ["%s=%d" % (self.realtime_port_option, port)]

    def import_odoo(self):
        """Import ``odoo`` into this process as its command line does; return the package."""
        if self.major == 11:
            sys.path.insert(0, str(RUNTIME))
            import py311compat

            return py311compat.import_odoo()
        import odoo

        return odoo


def installed_major():
    """The major version of the ``odoo`` package this interpreter would import."""
    package = importlib.util.find_spec("odoo").submodule_search_locations[0]
    return runpy.run_path(str(Path(package) / "release.py"))["version_info"][0]


VERSIONS = {
    11: OdooVersion(11, [sys.executable, str(RUNTIME / "odoo")], ROOT / "addons",
                    "--longpolling-port"),
    18: OdooVersion(18, [str(Path(sys.executable).parent / "odoo")], ROOT / "addons-18.0",
                    "--gevent-port"),
}
ODOO_VERSION = VERSIONS[installed_major()]
