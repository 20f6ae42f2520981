"""What queue_celery does on every Odoo version: the job store, the Celery app, the embedded
broker, the JSON encoding, the runner and the worker start-up.

Each version's addon reaches it as its ``core`` subpackage; what differs between Odoo
versions is the addon's ``odoo_version`` module, the only place the core asks about it.
"""
