{
    "name": "queue_job benchmark jobs",
    "summary": "The same no-op job method as queue_celery_bench, for OCA queue_job",
    "version": "1.0.0",
    "license": "LGPL-3",
    "depends": ["queue_job"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
}
