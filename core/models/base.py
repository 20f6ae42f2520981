from odoo import models

from ..canvas import Delayable


class DelayedCall:
    """``records.with_delay(...)``: the next method called on it becomes a job."""

    __slots__ = ("_records", "_options")

    def __init__(self, records, options):
        self._records = records
        self._options = options

    def __getattr__(self, method_name):
        records = self._records

        def enqueue(*args, **kwargs):
            return records.env["celery.job"]._enqueue(records._name, records.ids, method_name,
                                                      args, kwargs, **self._options)

        return enqueue


class DelayableCall(DelayedCall):
    """``records.delayable(...)``: the next method called on it becomes a Delayable."""

    __slots__ = ()

    def __getattr__(self, method_name):
        def delayable(*args, **kwargs):
            return Delayable(self._records, method_name, args, kwargs, self._options)

        return delayable


class Base(models.AbstractModel):
    _inherit = "base"

    def with_delay(self, queue=None, priority=None, eta=None, countdown=None,
                   max_retries=None, description=None, identity_key=None, time_limit=None,
                   channel=None):
        """Defer the next method call on these records to a job; it returns the job.

        ``records.with_delay(channel="root.imports").method(*args, **kwargs)``. The options
        are ``celery.job.enqueue``'s. Private methods may be deferred this way.
        """
        return DelayedCall(self, dict(queue=queue, priority=priority, eta=eta,
                                      countdown=countdown, max_retries=max_retries,
                                      description=description, identity_key=identity_key,
                                      time_limit=time_limit, channel=channel))

    def delayable(self, queue=None, priority=None, eta=None, countdown=None,
                  max_retries=None, description=None, identity_key=None, time_limit=None,
                  channel=None):
        """The next method call on these records, not yet enqueued: a Delayable, for
        ``chain`` and ``group`` (``from odoo.addons.queue_celery import chain, group``).

        ``chain(records.delayable().step1(), records.delayable().step2()).delay()``. The
        options are ``celery.job.enqueue``'s.
        """
        return DelayableCall(self, dict(queue=queue, priority=priority, eta=eta,
                                        countdown=countdown, max_retries=max_retries,
                                        description=description, identity_key=identity_key,
                                        time_limit=time_limit, channel=channel))
