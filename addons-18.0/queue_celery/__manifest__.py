{
    "name": "Celery Job Queue",
    "summary": "Run any model method in the background through Celery, "
               "with a job record, priority queues and a Jobs screen",
    "version": "18.0.1.0.0",
    "category": "Extra Tools",
    "license": "LGPL-3",
    "author": "queue_celery developers",
    "depends": ["base", "bus", "web"],
    "external_dependencies": {"python": ["celery", "kombu", "sqlalchemy"]},
    "data": [
        "security/queue_celery_security.xml",
        "security/ir.model.access.csv",
        "data/ir_cron.xml",
        "data/ir_config_parameter.xml",
        "data/celery_job_channel.xml",
        "views/celery_job_views.xml",
        "views/celery_job_channel_views.xml",
        "views/celery_job_function_views.xml",
        "views/ir_cron_views.xml",
    ],
    "assets": {
        "web._assets_frontend_helpers": [
            ("prepend", "queue_celery/static/src/scss/frontend_bootstrap_defaults.scss"),
        ],
        "web.assets_backend": [
            "queue_celery/static/src/js/celery_job_notifications.js",
            "queue_celery/static/src/scss/celery_job.scss",
        ],
    },
    "post_load": "post_load",
}
