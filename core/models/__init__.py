"""The models both Odoo versions define alike; each addon imports them from its models."""
from . import base
from . import celery_job
from . import celery_job_channel
from . import celery_job_function
from . import celery_job_progress
from . import celery_job_batch
from . import ir_cron
