"""``Deferred(dbname, uid, model_name, method_name, args, kwargs)``: enqueue from any code,
a shell included, in a transaction of its own."""
from .. import odoo_version


def _deferred(queue):
    def deferred(dbname, uid, model_name, method_name, args=(), kwargs=None, **options):
        """Enqueue ``model_name.method_name(*args, **kwargs)`` as user ``uid`` on the
        ``%s`` queue, in a transaction of its own; return the job's id."""
        with odoo_version.new_environment(dbname, uid) as env:
            return env["celery.job"].enqueue(model_name, method_name, args=args, kwargs=kwargs,
                                             queue=queue, **options).id

    deferred.__doc__ = deferred.__doc__ % queue
    return deferred


Deferred = _deferred("default")
HighPriorityDeferred = _deferred("high")
LowPriorityDeferred = _deferred("low")
