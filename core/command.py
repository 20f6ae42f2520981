"""``odoo celery worker``: Celery workers for queue_celery jobs, without HTTP.

Run it on any machine that reaches the database and the broker, with the same
odoo.conf as the server; Odoo finds this command when the addons path comes first:
``odoo --addons-path=... celery worker -c odoo.conf --queues high,default --concurrency 4``.
"""
import argparse
import sys

import odoo
from odoo.cli import Command

from .worker import run_worker


class Celery(Command):
    """Run Celery workers for queue_celery jobs (see `odoo celery worker --help`)"""

    def run(self, args):
        parser = argparse.ArgumentParser(
            prog="odoo celery", description="Celery workers for queue_celery jobs. "
            "Options not listed here are Odoo's (-c odoo.conf, -d databases, --db_host, ...).")
        actions = parser.add_subparsers(dest="action", required=True)
        worker = actions.add_parser("worker", help="run a worker")
        worker.add_argument("--queues", default="high,default,low",
                            help="job queues to consume, comma separated (default: all)")
        worker.add_argument("--concurrency", type=int, default=2,
                            help="processes running jobs (default 2)")
        worker.add_argument("--pool", default="prefork", choices=("prefork", "solo"),
                            help="Celery execution pool (default prefork)")
        worker.add_argument("--hostname", default="odoo@%h",
                            help="Celery node name (default odoo@%%h)")
        worker.add_argument("--loglevel", default="INFO", help="Celery's log level")
        worker.add_argument("--stop-with-parent", action="store_true",
                            help="stop after the running job when the process that started this"
                            " one ends (how Odoo's threaded server starts its workers)")
        options, odoo_args = parser.parse_known_args(args)
        odoo.tools.config.parse_config(odoo_args)
        sys.exit(run_worker(options.queues.split(","), options.concurrency, options.pool,
                            options.hostname, options.loglevel,
                            stop_with_parent=options.stop_with_parent))
