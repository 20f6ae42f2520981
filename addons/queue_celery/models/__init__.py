from . import base
from . import celery_job
