"""Restore what Odoo 11 needs from Python 3.5/3.6 on Python 3.11.

Each patch is one small function naming the error it prevents. ``import_odoo``
applies the EARLY ones, imports ``odoo``, then applies the LATE ones; the early ones
must not import ``threading`` (gevent patches it first in the longpolling process).
A patch named in ``$ODOO_PY311_SKIP`` (comma separated) is left out: the tests
use it to prove that every patch is needed.
"""
import os

_SKIP = set(filter(None, os.environ.get("ODOO_PY311_SKIP", "").split(",")))


def collections_abc_aliases():
    """ImportError: cannot import name 'Iterable' from 'collections' (odoo/tools/misc.py, models.py)."""
    import collections
    import collections.abc

    for name in collections.abc.__all__:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def inspect_getargspec():
    """ImportError: cannot import name 'formatargspec' from 'inspect' (tools/cache.py, api.py, http.py)."""
    import collections
    import inspect

    ArgSpec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")

    def getargspec(func):
        spec = inspect.getfullargspec(func)
        return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)

    def formatargspec(args, varargs=None, varkw=None, defaults=None, *_ignored, **_also_ignored):
        first_default = len(args) - len(defaults or ())
        parts = [
            arg if i < first_default else f"{arg}={defaults[i - first_default]!r}"
            for i, arg in enumerate(args)
        ]
        if varargs:
            parts.append("*" + varargs)
        if varkw:
            parts.append("**" + varkw)
        return "(" + ", ".join(parts) + ")"

    inspect.getargspec = getargspec
    inspect.formatargspec = formatargspec


def base64_encodestring():
    """AttributeError: module 'base64' has no attribute 'encodestring' (menu icons during -i base)."""
    import base64

    base64.encodestring = base64.encodebytes
    base64.decodestring = base64.decodebytes


def elementtree_getchildren():
    """AttributeError: 'xml.etree.ElementTree.Element' object has no attribute 'getchildren' (/web/webclient/qweb)."""
    import importlib
    import sys

    # The C Element type takes no new methods: block it so ElementTree stays pure Python,
    # re-imported if something (pytest) already loaded it with the C type.
    sys.modules["_elementtree"] = None
    sys.modules.pop("xml.etree.ElementTree", None)
    ElementTree = importlib.import_module("xml.etree.ElementTree")

    ElementTree.Element.getchildren = lambda self: list(self)
    ElementTree.Element.getiterator = ElementTree.Element.iter


def setrlimit_int():
    """TypeError: 'float' object cannot be interpreted as an integer (every prefork worker dies at start)."""
    import resource

    setrlimit = resource.setrlimit
    resource.setrlimit = lambda which, limits: setrlimit(which, tuple(int(limit) for limit in limits))




def qweb_ast_py38():
    """TypeError: required field "posonlyargs" missing from arguments (every QWeb page answers 500)."""
    import ast

    missing_fields = {
        ast.arguments: {"posonlyargs": list, "kwonlyargs": list, "kw_defaults": list},
        ast.Module: {"type_ignores": list},
        ast.comprehension: {"is_async": int},
        ast.FunctionDef: {"decorator_list": list},
        ast.Call: {"keywords": list},
    }
    constants = {"True": True, "False": False, "None": None}

    class Repair(ast.NodeTransformer):
        def generic_visit(self, node):
            for field, make in missing_fields.get(type(node), {}).items():
                if getattr(node, field, None) is None:
                    setattr(node, field, make())
            node = super().generic_visit(node)
            if isinstance(node, ast.Name) and node.id in constants:
                node = ast.copy_location(ast.Constant(constants[node.id]), node)
            # _create_def sets a FunctionDef's lineno alone: fix_missing_locations then
            # gives it and its children the end_lineno of the module (1).
            lineno = getattr(node, "lineno", None)
            if lineno is not None and (getattr(node, "end_lineno", None) or 0) < lineno:
                node.end_lineno = lineno
                node.end_col_offset = max(getattr(node, "end_col_offset", None) or 0,
                                          getattr(node, "col_offset", None) or 0)
            return node

    fix_missing_locations = ast.fix_missing_locations

    def repair_then_fix(node):
        return Repair().visit(fix_missing_locations(node))

    ast.fix_missing_locations = repair_then_fix


def thread_isalive():
    """AttributeError: 'Thread' object has no attribute 'isAlive' (HttpCase, ThreadedServer.stop)."""
    import threading

    threading.Thread.isAlive = threading.Thread.is_alive


def yaml_load_loader():
    """TypeError: load() missing 1 required positional argument: 'Loader' (.yml demo data)."""
    import yaml

    # The safe loader, plus the tags odoo/tools/yaml_tag.py registered on yaml.Loader while
    # odoo was imported (!record, !python, !ref, ...): all that Odoo's .yml data needs.
    class OdooDataLoader(yaml.SafeLoader):
        pass

    for tag, constructor in yaml.Loader.yaml_constructors.items():
        if tag and tag.startswith("!"):
            OdooDataLoader.add_constructor(tag, constructor)
    for prefix, constructor in yaml.Loader.yaml_multi_constructors.items():
        if prefix.startswith("!"):
            OdooDataLoader.add_multi_constructor(prefix, constructor)
    load = yaml.load
    yaml.load = lambda stream, Loader=OdooDataLoader: load(stream, Loader)


def safe_eval_opcodes():
    """ValueError: forbidden opcode(s) ... RESUME, PRECALL, CALL (every domain, attrs and cron code)."""
    import importlib
    from opcode import opmap

    safe_eval = importlib.import_module("odoo.tools.safe_eval")

    def add(target, names):
        target.update(opmap[name] for name in names if name in opmap)

    const = ["RESUME", "NOP", "LIST_EXTEND", "SET_UPDATE", "LIST_TO_TUPLE", "DICT_UPDATE"]
    expr = const + ["BINARY_OP", "IS_OP", "CONTAINS_OP", "DICT_MERGE", "FORMAT_VALUE",
                    "BUILD_STRING", "COPY", "SWAP", "PUSH_NULL", "PRECALL", "CALL", "KW_NAMES",
                    "RETURN_GENERATOR", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
                    "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_TRUE",
                    "POP_JUMP_BACKWARD_IF_FALSE", "POP_JUMP_BACKWARD_IF_TRUE",
                    "POP_JUMP_FORWARD_IF_NONE", "POP_JUMP_FORWARD_IF_NOT_NONE",
                    "POP_JUMP_BACKWARD_IF_NONE", "POP_JUMP_BACKWARD_IF_NOT_NONE"]
    # LOAD_ASSERTION_ERROR (3.9) replaced LOAD_GLOBAL AssertionError in `assert`.
    safe = expr + ["PUSH_EXC_INFO", "CHECK_EXC_MATCH", "RERAISE", "JUMP_IF_NOT_EXC_MATCH",
                   "LOAD_ASSERTION_ERROR"]
    # Mutated in place: ir_qweb and others imported these sets by name.
    add(safe_eval._CONST_OPCODES, const)
    add(safe_eval._EXPR_OPCODES, expr)
    add(safe_eval._SAFE_OPCODES, safe)


EARLY = [collections_abc_aliases, inspect_getargspec, base64_encodestring,
         elementtree_getchildren, setrlimit_int, qweb_ast_py38]
LATE = [thread_isalive, yaml_load_loader, safe_eval_opcodes]


def _apply(patches):
    for patch in patches:
        if patch.__name__ not in _SKIP:
            patch()


def import_odoo():
    """Import Odoo 11 on Python 3.11 with the patches around it; return the ``odoo`` package."""
    _apply(EARLY)
    import odoo

    _apply(LATE)
    return odoo
