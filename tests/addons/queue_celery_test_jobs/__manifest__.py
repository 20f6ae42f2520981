{
    "name": "queue_celery test jobs",
    "summary": "Job methods for queue_celery's process tests: each writes one row to count",
    "version": "1.0.0",
    "license": "LGPL-3",
    "depends": ["queue_celery"],
    "data": ["security/ir.model.access.csv", "data/celery_job_function.xml"],
}
