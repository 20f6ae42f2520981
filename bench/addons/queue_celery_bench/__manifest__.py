{
    "name": "queue_celery benchmark jobs",
    "summary": "A no-op job method for bench/run.py",
    "version": "1.0.0",
    "license": "LGPL-3",
    "depends": ["queue_celery"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
}
