from . import cli
from . import models
from .deferred import Deferred, HighPriorityDeferred, LowPriorityDeferred
from .exceptions import RetryableJobError

__all__ = ["Deferred", "HighPriorityDeferred", "LowPriorityDeferred", "RetryableJobError"]
