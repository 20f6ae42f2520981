from . import cli
from . import models
from .core.canvas import chain, enqueue_many, group
from .core.exceptions import RetryableJobError
from .core.deferred import Deferred, HighPriorityDeferred, LowPriorityDeferred

__all__ = ["Deferred", "HighPriorityDeferred", "LowPriorityDeferred", "RetryableJobError", "chain",
           "enqueue_many", "group"]


def post_load():
    """Server-wide loading (``--load=base,web,queue_celery``): fork Celery workers with Odoo's."""
    from .core import prefork

    prefork.install()
