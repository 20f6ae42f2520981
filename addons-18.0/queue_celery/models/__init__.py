from . import base
from . import celery_job
from . import celery_job_progress
