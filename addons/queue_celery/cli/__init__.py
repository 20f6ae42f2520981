"""``odoo celery worker``: Celery workers for queue_celery jobs, without HTTP.

Run it on any machine that reaches the database and the broker, with the same
odoo.conf as the server; Odoo finds this command when the addons path comes first:
``odoo --addons-path=... celery worker -c odoo.conf --queues high,default --concurrency 4``.
"""
import argparse
import logging
import sys

from celery.utils.nodenames import default_nodename

import odoo
from odoo.cli import Command

_logger = logging.getLogger(__name__)


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
        options, odoo_args = parser.parse_known_args(args)
        odoo.tools.config.parse_config(odoo_args)
        sys.exit(run_worker(options.queues.split(","), options.concurrency, options.pool,
                            options.hostname, options.loglevel))


def run_worker(queues, concurrency, pool, hostname, loglevel):
    """Start a Celery worker on ``queues`` in this process; return its exit code."""
    from odoo.addons.queue_celery.celeryapp import QUEUES, celery_app, queue_name

    unknown = set(queues) - set(QUEUES)
    if unknown:
        sys.exit("unknown queue(s) %s: use %s" % (", ".join(sorted(unknown)), ", ".join(QUEUES)))
    # Registries loaded before the pool forks are shared by its processes; connections are not.
    for dbname in filter(None, (odoo.tools.config["db_name"] or "").split(",")):
        odoo.registry(dbname)
    odoo.sql_db.close_all()
    app = celery_app()
    worker = app.Worker(queues=[queue_name(queue) for queue in queues], concurrency=concurrency,
                        pool=pool, hostname=default_nodename(hostname), loglevel=loglevel)
    worker.start()
    return worker.exitcode
