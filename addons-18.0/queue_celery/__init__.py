from . import cli
from . import controllers
from . import models
from .core.canvas import chain, enqueue_many, group
from .core.exceptions import RetryableJobError
from .core.deferred import Deferred, HighPriorityDeferred, LowPriorityDeferred

__all__ = ["Deferred", "HighPriorityDeferred", "LowPriorityDeferred", "RetryableJobError", "chain",
           "enqueue_many", "group"]


def post_load():
    """Server-wide loading (``--load=base,web,queue_celery``): Celery workers with Odoo's server,
    forked by the prefork server (``--workers=N``), started beside the threaded one."""
    from .core import prefork, threaded

    prefork.install()
    threaded.install()
