from ..core import models as shared  # noqa: F401  (with_delay, job progress)
from . import celery_job
from . import res_users
from . import ir_cron
