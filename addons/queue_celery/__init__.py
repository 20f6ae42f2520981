from . import cli
from . import models
from .deferred import Deferred, HighPriorityDeferred, LowPriorityDeferred
from .core.exceptions import RetryableJobError

__all__ = ["Deferred", "HighPriorityDeferred", "LowPriorityDeferred", "RetryableJobError"]


def post_load():
    """Server-wide loading (``--load=web,queue_celery``): fork Celery workers with Odoo's."""
    from . import server

    server.install()
