"""The JSON encoding of job arguments, context and results: never pickle.

JSON carries None, bool, int, float, str, list and dict with str keys. Tuples,
recordsets, dates, datetimes and Decimals are wrapped as ``{"__type__": ...}``
objects so they come back as what was given. Anything else is refused at
enqueue time with a ``ValueError`` naming where it was found.
"""
import datetime
import json
import math
from decimal import Decimal

from odoo import models

TYPE_KEY = "__type__"
# Deeper nesting is refused: Python's own recursion limit would end it with a RecursionError.
MAX_DEPTH = 100


def _encode(value, path, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError("%s: nested more than %d deep" % (path, MAX_DEPTH))
    depth += 1
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError("%s: string is not valid Unicode (%s)" % (path, error.reason))
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("%s: %r cannot be carried by JSON" % (path, value))
        return value
    if isinstance(value, list):
        return [_encode(item, "%s[%d]" % (path, i), depth) for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {TYPE_KEY: "tuple", "items": [_encode(item, "%s[%d]" % (path, i), depth)
                                             for i, item in enumerate(value)]}
    if isinstance(value, dict):
        if TYPE_KEY in value:
            raise ValueError("%s: the key %r is reserved" % (path, TYPE_KEY))
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("%s: dict key %r is not a string" % (path, key))
            encoded[key] = _encode(item, "%s[%r]" % (path, key), depth)
        return encoded
    if isinstance(value, models.BaseModel):
        return {TYPE_KEY: "recordset", "model": value._name, "ids": list(value.ids)}
    # datetime is a subclass of date: test it first.
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            raise ValueError("%s: aware datetime %r; give naive UTC as Odoo does" % (path, value))
        return {TYPE_KEY: "datetime", "value": value.isoformat()}
    if isinstance(value, datetime.date):
        return {TYPE_KEY: "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("%s: %r cannot be carried by JSON" % (path, value))
        return {TYPE_KEY: "decimal", "value": str(value)}
    raise ValueError("%s: %s %r cannot be serialised to JSON"
                     % (path, type(value).__name__, value))


def dumps(value, path="value"):
    """Encode ``value`` as JSON text; ``ValueError`` names what cannot be carried."""
    return json.dumps(_encode(value, path), separators=(",", ":"))


def carried(mapping):
    """The entries of ``mapping`` that JSON can carry (a context holds a few that it cannot)."""
    try:
        dumps(mapping)
        return dict(mapping)
    except ValueError:
        return {key: value for key, value in mapping.items() if _carries(value)}


def _carries(value):
    try:
        dumps(value)
    except ValueError:
        return False
    return True


def loads(text, env=None):
    """Decode JSON text from :func:`dumps`; recordsets are browsed in ``env``."""

    def decode(obj):
        kind = obj.get(TYPE_KEY)
        if kind is None:
            return obj
        if kind == "tuple":
            return tuple(obj["items"])
        if kind == "recordset":
            return env[obj["model"]].browse(obj["ids"])
        if kind == "datetime":
            return datetime.datetime.fromisoformat(obj["value"])
        if kind == "date":
            return datetime.date.fromisoformat(obj["value"])
        if kind == "decimal":
            return Decimal(obj["value"])
        raise ValueError("unknown encoded type %r" % kind)

    return json.loads(text, object_hook=decode)
