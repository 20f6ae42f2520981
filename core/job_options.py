"""What ``enqueue`` accepts: every argument checked and normalised before anything is written.

A wrong value raises JobOptionError naming the parameter; callers over RPC get it as a
plain error, never a database error or a Python traceback.
"""
import ast
import datetime
import math
import xmlrpc.client

from . import encoding
from .celeryapp import DEFAULT_PRIORITY, MAX_PRIORITY, QUEUES
from .jobstore import DEFAULT_MAX_RETRIES
from .jobstore import channel as find_channel
from .settings import option

MAX_RETRIES_LIMIT = 1000
TIME_LIMIT_MAX = 7 * 24 * 3600
COUNTDOWN_MAX = 10 * 366 * 24 * 3600
DESCRIPTION_MAX = 256
DEPENDENCIES_MAX = 10000


class JobOptionError(ValueError):
    """An argument of ``enqueue`` that cannot be taken; the message names it."""


def _integer(name, value, default, low, high):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise JobOptionError("%s must be an integer from %d to %d, not %r."
                             % (name, low, high, value))
    return value


def eta_from(eta, countdown, now=None):
    """The naive UTC datetime not before which the job runs, or None."""
    now = now or datetime.datetime.utcnow()
    if eta is not None and eta is not False and countdown is not None:
        raise JobOptionError("Give eta or countdown, not both.")
    if countdown is not None:
        if isinstance(countdown, bool) or not isinstance(countdown, (int, float)) \
                or not math.isfinite(countdown) or not 0 <= countdown <= COUNTDOWN_MAX:
            raise JobOptionError("countdown must be a number of seconds from 0 to %d, not %r."
                                 % (COUNTDOWN_MAX, countdown))
        return now + datetime.timedelta(seconds=countdown)
    if eta is None or eta is False:
        return None
    if isinstance(eta, xmlrpc.client.DateTime):
        eta = datetime.datetime.strptime(eta.value, "%Y%m%dT%H:%M:%S")
    elif isinstance(eta, str):
        try:
            eta = datetime.datetime.fromisoformat(eta)
        except ValueError:
            raise JobOptionError("eta %r is not a date and time (ISO 8601: 'YYYY-MM-DD "
                                 "HH:MM:SS', UTC unless it gives an offset)." % eta) from None
    elif not isinstance(eta, datetime.datetime):
        raise JobOptionError("eta must be a datetime or an ISO 8601 string, not %r." % (eta,))
    if eta.tzinfo is not None:
        eta = eta.astimezone(datetime.UTC).replace(tzinfo=None)
    return eta


def check_call(model_name, method_name, record_ids, args, kwargs):
    """The call's parts checked; ``(record ids, args list, kwargs dict)``."""
    if not isinstance(model_name, str):
        raise JobOptionError("The model must be a model name or a recordset, not %r."
                             % (model_name,))
    if not isinstance(method_name, str) or not method_name:
        raise JobOptionError("method_name must be a method's name, not %r." % (method_name,))
    record_ids = [] if record_ids is None else record_ids
    if not isinstance(record_ids, (list, tuple)) or not all(
            isinstance(record_id, int) and not isinstance(record_id, bool)
            for record_id in record_ids):
        raise JobOptionError("record_ids must be a list of integers, not %r." % (record_ids,))
    args = () if args is None else args
    if not isinstance(args, (list, tuple)):
        raise JobOptionError("args must be a list, not %s." % type(args).__name__)
    kwargs = {} if kwargs is None or kwargs is False else kwargs
    if not isinstance(kwargs, dict):
        raise JobOptionError("kwargs must be a dict, not %s." % type(kwargs).__name__)
    return list(record_ids), list(args), kwargs


def check_options(queue, priority, max_retries, time_limit, identity_key, description):
    """The options checked, with their defaults: a dict of them by name."""
    if queue not in QUEUES:
        raise JobOptionError("Unknown queue %r: use one of %s." % (queue, ", ".join(QUEUES)))
    if identity_key is not None and identity_key is not False \
            and not isinstance(identity_key, str):
        raise JobOptionError("identity_key must be a string, not %r." % (identity_key,))
    if description is not None and description is not False and not isinstance(description, str):
        raise JobOptionError("description must be a string, not %r." % (description,))
    return {
        "queue": queue,
        "priority": _integer("priority", priority, DEFAULT_PRIORITY, 0, MAX_PRIORITY),
        "max_retries": _integer("max_retries", max_retries, DEFAULT_MAX_RETRIES, 0,
                                MAX_RETRIES_LIMIT),
        "time_limit": _integer("time_limit", time_limit, 0, 1, TIME_LIMIT_MAX),
        "identity_key": identity_key or None,
        "description": (description or "")[:DESCRIPTION_MAX] or None,
    }


def check_channel(cr, channel, queue):
    """``(channel id or None, queue)``: the channel named ``channel`` and, when ``queue`` is
    not given, the channel's queue (``default`` without a channel)."""
    if channel is None or channel is False:
        return None, queue or "default"
    if not isinstance(channel, str):
        raise JobOptionError("channel must be a channel's name (root.imports), not %r."
                             % (channel,))
    found = find_channel(cr, channel)
    if found is None:
        raise JobOptionError("Unknown channel %r: a job manager creates it in Settings > Jobs "
                             "> Channels first." % channel)
    return found[0], queue or found[1]


def check_depends_on(depends_on):
    """The ids of the jobs a new job waits for, sorted, without repeats."""
    if depends_on is None or depends_on is False:
        return []
    if not isinstance(depends_on, (list, tuple)) or not all(
            isinstance(job_id, int) and not isinstance(job_id, bool) and job_id > 0
            for job_id in depends_on):
        raise JobOptionError("depends_on must be a list of job ids, not %r." % (depends_on,))
    if len(depends_on) > DEPENDENCIES_MAX:
        raise JobOptionError("depends_on names %d jobs, more than %d: wait for a batch's "
                             "last jobs instead." % (len(depends_on), DEPENDENCIES_MAX))
    return sorted(set(depends_on))


def encode_call(args, kwargs, context):
    """The JSON of the arguments and the context, within ``celery_max_arguments_size``."""
    try:
        encoded = (encoding.dumps(args, "args"), encoding.dumps(kwargs, "kwargs"),
                   encoding.dumps(context, "context"))
    except ValueError as error:
        raise JobOptionError("Arguments cannot be serialised: %s" % error) from None
    size, limit = sum(map(len, encoded)), option("max_arguments_size")
    if size > limit:
        raise JobOptionError("The arguments and context take %d bytes, more than "
                             "celery_max_arguments_size (%d): save large data in an "
                             "attachment and pass its id." % (size, limit))
    return encoded


def parse_retry_pattern(text):
    """``{try number: seconds}`` from ``{1: 10, 5: 60}`` (or its JSON); {} from empty. A
    literal, never code: ``ast.literal_eval`` evaluates no call or name."""
    if text is None or text is False or not text.strip():
        return {}
    try:
        pattern = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pattern = None
    if not isinstance(pattern, dict) or not pattern:
        raise JobOptionError("Retry pattern %r: write {try: seconds, ...}, e.g. "
                             "{1: 10, 5: 60, 10: 600}." % text)
    parsed = {}
    for tries, seconds in pattern.items():
        if isinstance(tries, bool) or isinstance(seconds, bool):
            tries = None
        try:
            tries, seconds = int(tries), float(seconds)
        except (TypeError, ValueError):
            tries, seconds = 0, -1.0
        if not 1 <= tries <= MAX_RETRIES_LIMIT or not 0 <= seconds <= COUNTDOWN_MAX:
            raise JobOptionError("Retry pattern %r: tries from 1 to %d, seconds from 0 to %d."
                                 % (text, MAX_RETRIES_LIMIT, COUNTDOWN_MAX))
        parsed[tries] = seconds
    return parsed


def pattern_delay(pattern, retry_count):
    """The seconds the retry pattern ``pattern`` (a job function's text) sets before retry
    ``retry_count + 1`` (from the n-th try on: the entry of the largest n not above the tries
    made), or None: the default backoff."""
    tries = retry_count + 1
    steps = [(step, seconds) for step, seconds in parse_retry_pattern(pattern).items()
             if step <= tries]
    return max(steps)[1] if steps else None


def with_function_defaults(defaults, options):
    """``options`` (enqueue's, by name) with those not given taken from ``defaults`` (a job
    function's, as ``jobstore.function_defaults`` reads them)."""
    given = dict(options)
    for name, value in defaults.items():
        if given.get(name) is None or given.get(name) is False:
            given[name] = value
    return given
