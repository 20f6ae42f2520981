"""Real parts for the tests in tests/ and the benchmarks in bench/: Odoo in this process,
odoo.conf files, ``odoo`` servers and ``odoo celery worker`` processes, brokers, and reading
jobs back from the database.

Importing it imports ``odoo`` the way this interpreter's Odoo version starts (odoo_version.py):
test and bench modules import it before ``odoo``.
"""
from harness.odoo_version import ODOO_VERSION
from harness.site import (QUEUE_PREFIX, ROOT, RUN, addons_path, drop_database, free_port,
                          install_database, start_odoo, use_broker, write_conf)
from harness.database import (FINAL_STATES, connect, count_rows, job_values, query,
                              wait_for_jobs)
from harness.processes import (WORKER_KINDS, Client, OdooProcess, Process, Server, Worker,
                               stop_all)
from harness.brokers import BROKERS, RedisServer, require_port

# The Odoo calls whose spelling differs between versions, as the running version spells them.
ADMIN_UID = ODOO_VERSION.admin_uid
environment = ODOO_VERSION.environment
as_user = ODOO_VERSION.as_user
invalidate = ODOO_VERSION.invalidate
web_client_polls = ODOO_VERSION.web_client_polls
run_due_crons = ODOO_VERSION.run_due_crons
bus_message = ODOO_VERSION.bus_message
bus_payload = ODOO_VERSION.bus_payload
