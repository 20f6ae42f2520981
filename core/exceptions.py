"""Exceptions that job code raises to steer its job."""


class RetryableJobError(Exception):
    """Raise from job code to run the job again later instead of failing it.

    :param seconds: wait this long before the next try; by default an exponential
        backoff with jitter (``celery_retry_backoff`` in odoo.conf is its base).
    :param ignore_retry: retry even when the job's ``max_retries`` are used up.
    """

    def __init__(self, message="", seconds=None, ignore_retry=False):
        super().__init__(message)
        self.seconds = seconds
        self.ignore_retry = ignore_retry


class JobTimeLimitExceeded(Exception):
    """Raised in a job that ran past its time limit; the job ends failed."""


class JobStopped(Exception):
    """Raised in a job that a job manager stopped (``button_cancel`` on a started job); its
    work is rolled back and it ends cancelled."""
