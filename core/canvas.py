"""Jobs that wait for other jobs, declared before any is enqueued, as in Celery's canvas.

``records.delayable(**options).method(*args, **kwargs)`` is one call, not yet enqueued;
``chain(a, b, c)`` runs its parts one after the other, ``group(a, b, c)`` side by side;
``x.on_done(y)`` runs ``y`` once every job of ``x`` is done; ``delay()`` enqueues the whole
graph, in one batch when it has more than one job. A part waits for the *done* end of
what comes before it: a failure holds the rest until a retry succeeds.

``enqueue_many(delayables)`` enqueues many independent calls at once, in one statement.
"""
import itertools

from odoo.exceptions import UserError

from . import jobstore


class Canvas:
    """What chains and groups are made of: its first jobs (``heads``) and its last
    (``tails``)."""

    heads = tails = ()

    def on_done(self, *parts):
        """A chain of this, then ``parts`` side by side."""
        return chain(self, group(*parts) if len(parts) > 1 else parts[0])

    def delay(self, description=None):
        """Enqueue every call of the graph this belongs to, each waiting for those before
        it, in one batch named ``description`` when there are several; the jobs, in the
        order they were enqueued."""
        calls = _topological_order(_graph(self.heads))
        env = calls[0].records.env
        batch_id = None
        if len(calls) > 1:
            batch_id = env["celery.job"]._create_batch(
                description or "%s and %d more" % (calls[0].label, len(calls) - 1))
        for call in calls:
            call.job = call.records.env["celery.job"]._enqueue(
                call.records._name, call.records.ids, call.method_name, call.args, call.kwargs,
                depends_on=[before.job.id for before in call.waits_for], batch_id=batch_id,
                **call.options)
        if batch_id:
            jobstore.seal_batch(env.cr, batch_id)
        return env["celery.job"].browse([call.job.id for call in calls])


class Delayable(Canvas):
    """One call, not yet enqueued: ``records.delayable(**options).method(*args, **kwargs)``
    (the options are ``celery.job.enqueue``'s)."""

    def __init__(self, records, method_name, args, kwargs, options):
        self.records, self.method_name = records, method_name
        self.args, self.kwargs, self.options = args, kwargs, options
        self.waits_for, self.waited_by = [], []
        self.job = None  # once enqueued

    @property
    def heads(self):
        return (self,)

    tails = heads

    @property
    def label(self):
        return self.options.get("description") or "%s.%s" % (self.records._name,
                                                             self.method_name)


class Composite(Canvas):
    def __init__(self, heads, tails):
        self.heads, self.tails = tuple(heads), tuple(tails)


def chain(*parts):
    """``parts`` one after the other: each starts once every job of the one before is done."""
    _check_parts(parts)
    for before, after in itertools.pairwise(parts):
        for tail in before.tails:
            for head in after.heads:
                head.waits_for.append(tail)
                tail.waited_by.append(head)
    return Composite(parts[0].heads, parts[-1].tails)


def group(*parts):
    """``parts`` side by side; what comes after waits for all of them."""
    _check_parts(parts)
    return Composite([head for part in parts for head in part.heads],
                     [tail for part in parts for tail in part.tails])


def enqueue_many(delayables):
    """Enqueue independent calls (``records.delayable(**options).method(...)``, of one
    transaction) at once: each checked as ``with_delay()`` checks it, all written in one
    INSERT and published together after commit, several times faster than ``with_delay()``
    in a loop for many jobs. No batch, and nothing waits for anything. The jobs, in order."""
    calls = list(delayables)
    if not calls or not all(isinstance(call, Delayable) for call in calls):
        raise UserError("enqueue_many() takes one or more delayables "
                        "(records.delayable().method()), not %r." % (delayables,))
    linked = [call.label for call in calls if call.waits_for or call.waited_by]
    if linked:
        raise UserError("enqueue_many() takes independent calls; in a chain or group, these "
                        "are enqueued by its delay(): %s." % ", ".join(linked))
    enqueued = [call.label for call in calls if call.job]
    if enqueued:
        raise UserError("Already enqueued, not enqueued again: %s." % ", ".join(enqueued))
    jobs = calls[0].records.env["celery.job"]._enqueue_many(
        [(call.records, call.method_name, call.args, call.kwargs, call.options)
         for call in calls])
    for call, job in zip(calls, jobs, strict=True):
        call.job = job
    return jobs


def _check_parts(parts):
    if not parts or not all(isinstance(part, Canvas) for part in parts):
        raise UserError("chain() and group() take delayables (records.delayable().method()), "
                        "chains and groups, not %r." % (parts,))


def _graph(calls):
    """Every call linked to ``calls``, however far, before or after."""
    seen, todo = {}, list(calls)
    while todo:
        call = todo.pop()
        if id(call) not in seen:
            seen[id(call)] = call
            todo += call.waits_for + call.waited_by
    return list(seen.values())


def _topological_order(calls):
    """``calls``, each after those it waits for; refused if one was enqueued already or if
    they wait for each other in a cycle."""
    enqueued = [call.label for call in calls if call.job]
    if enqueued:
        raise UserError("Already enqueued, not enqueued again: %s." % ", ".join(enqueued))
    left = {id(call): len(set(map(id, call.waits_for))) for call in calls}
    ready = [call for call in calls if not left[id(call)]]
    order = []
    while ready:
        call = ready.pop(0)
        order.append(call)
        for after in {id(after): after for after in call.waited_by}.values():
            left[id(after)] -= 1
            if not left[id(after)]:
                ready.append(after)
    if len(order) < len(calls):
        raise UserError("These jobs would wait for each other in a cycle, so none would run: "
                        "%s." % ", ".join(call.label for call in calls if left[id(call)]))
    return order
