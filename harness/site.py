"""This run's Odoo: its odoo.conf files, the Odoo of this process, its broker and databases.

A run (a pytest session, a bench) names its own queues and files after its process id, so
runs side by side never take each other's messages.
"""
import os
import socket
import subprocess

from harness.odoo_version import ODOO_VERSION, ROOT

odoo = ODOO_VERSION.import_odoo()
RUN = ROOT / ".run"
QUEUE_PREFIX = "qc-%d." % os.getpid()
# Set by start_odoo: the run's name (its workers' host names start with it), its addons
# folders besides the product's, and the options every odoo.conf of the run carries.
_run = {"name": "qc"}
_extra_addons = []
_options = {"celery_queue_prefix": QUEUE_PREFIX}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def addons_path():
    """The product's addons for this Odoo version, then the run's own."""
    return ",".join(str(folder) for folder in [ODOO_VERSION.addons] + _extra_addons)


def write_conf(name, broker_url="", **options):
    """An odoo.conf under .run/ for this run, with the run's options and ``options``."""
    RUN.mkdir(exist_ok=True)
    path = RUN / ("%s-%d.conf" % (name, os.getpid()))
    subprocess.run([str(ROOT / "scripts" / "write-odoo-conf"), str(path), broker_url, addons_path()],
                   check=True)
    with open(path, "a") as conf:
        for key, value in dict(_options, **options).items():
            conf.write("%s = %s\n" % (key, value))
    return path


def run_name():
    return _run["name"]


def start_odoo(name, extra_addons=(), **options):
    """Configure the Odoo of this process for the run ``name``: ``extra_addons`` folders
    beside the product's and ``options`` in every odoo.conf it writes; addons importable."""
    _run["name"] = name
    _extra_addons[:] = list(extra_addons)
    _options.update(options)
    odoo.tools.config.parse_config(["-c", str(write_conf(name)), "--log-level=warn"])
    odoo.modules.module.initialize_sys_path()


def use_broker(broker_url):
    """Publish from this process to ``broker_url`` ('' is the embedded broker), on the run's
    queues."""
    odoo.tools.config["celery_broker_url"] = broker_url
    for key, value in _options.items():
        odoo.tools.config[key] = value


def install_database(dbname, modules):
    """A new database ``dbname`` with ``modules`` (comma separated), without demo data."""
    subprocess.run(ODOO_VERSION.command + [
        "-c", str(write_conf("install")), "-d", dbname, "-i", modules, "--without-demo=all",
        "--stop-after-init", "--log-level=warn", "--http-port=%d" % free_port()], check=True)


def drop_database(dbname):
    """Drop ``dbname`` if it exists, with this process's connections to it."""
    odoo.sql_db.close_db(dbname)
    subprocess.run(["dropdb", "--if-exists", "--force", dbname], check=True)
