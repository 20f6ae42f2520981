"""Every patch of runtime/py311compat.py is needed, and does its job.

For each patch, a small program takes a real Odoo 11 code path that Python 3.11 breaks.
It runs in a new interpreter (the patches are process-wide and the harness has already
loaded Odoo here), set up the way runtime/odoo does it: it must succeed with every patch,
and fail with the error the patch's docstring names when ``$ODOO_PY311_SKIP`` leaves that
one patch out.
"""
import ast
import os
import re
import subprocess
import sys
import textwrap

import pytest

from harness import ODOO_VERSION, ROOT

pytestmark = pytest.mark.skipif(not ODOO_VERSION.launcher_patches,
                                reason="the launcher's patches are for Odoo 11 (run under .venv)")
COMPAT = ROOT / "runtime" / "py311compat.py"

# The launcher's own start (runtime/odoo), then the snippet.
PRELUDE = f"""\
import sys
sys.path.insert(0, {str(ROOT / "runtime")!r})
import py311compat
odoo = py311compat.import_odoo()
"""

# patch name: (snippet run after the prelude, what the run must show when the patch is left out)
CASES = {
    "collections_abc_aliases": ("""
        import collections.abc
        from odoo.tools.misc import Iterable, Mapping, MutableSet
        assert Mapping is collections.abc.Mapping and Iterable is collections.abc.Iterable
        assert MutableSet is collections.abc.MutableSet
        """, r"ImportError: cannot import name '\w+' from 'collections'"),

    "inspect_getargspec": ("""
        from odoo.tools.cache import ormcache
        # Every @ormcache builds its key function from formatargspec(*getargspec(method)).
        cache = ormcache('x', 'kwargs.get("z")')

        def compute(self, x, y=1, *args, **kwargs):
            return x

        cache(compute)
        assert cache.key('model', 5, z=6) == (5, 6)
        """, r"(cannot import name|has no attribute) '(getargspec|formatargspec)'"),

    "base64_encodestring": ("""
        import base64
        from odoo.addons.base.ir.ir_ui_menu import IrUiMenu
        # The menu icon of every app, read while installing base.
        icon = IrUiMenu.read_image(None, 'base,static/description/icon.png')
        assert base64.b64decode(icon).startswith(b'\\x89PNG'), icon[:20]
        """, r"module 'base64' has no attribute 'encodestring'"),

    "elementtree_getchildren": ("""
        import tempfile
        from odoo.addons.web.controllers.main import concat_xml
        # What /web/webclient/qweb serves: the addons' static XML templates, concatenated.
        paths = []
        for name in ('a', 'b'):
            with tempfile.NamedTemporaryFile('w', suffix='.xml', delete=False) as xml:
                xml.write('<templates><t t-name="%s"/></templates>' % name)
                paths.append(xml.name)
        content, checksum = concat_xml(paths)
        assert content.count(b't-name=') == 2, content
        """, r"'[\w.]*Element' object has no attribute 'getchildren'"),

    "setrlimit_int": ("""
        import os
        import resource
        from odoo.service.server import Worker
        from odoo.tools import config
        # What every prefork worker runs between requests (limit_time_cpu added to a float).
        config['limit_memory_hard'] = resource.getrlimit(resource.RLIMIT_AS)[1]
        worker = Worker.__new__(Worker)
        worker.pid, worker.ppid = os.getpid(), os.getppid()
        worker.request_count, worker.request_max, worker.alive = 0, 10, True
        worker.process_limit()
        assert worker.alive
        assert resource.getrlimit(resource.RLIMIT_CPU)[0] >= config['limit_time_cpu']
        """, r"TypeError: 'float' object cannot be interpreted as an integer"),

    "yaml_load_loader": ("""
        import logging
        import yaml
        from odoo.tools.yaml_import import YamlInterpreter, yaml_tag
        # How .yml demo and test data are read: yaml.load(stream) without a Loader.
        # (No database here: __init__, which opens an Environment, is left out.)
        interpreter = YamlInterpreter.__new__(YamlInterpreter)
        interpreter.loglevel = logging.DEBUG
        interpreter.process('- a comment block\\n- another one\\n')
        record = yaml.load('!record {model: res.partner, id: p}')
        assert isinstance(record, yaml_tag.Record), record
        # Safe for everything else: no Python object is built from a document.
        try:
            yaml.load('!!python/object/apply:os.getpid []')
        except yaml.constructor.ConstructorError:
            pass
        else:
            raise AssertionError('yaml.load builds Python objects')
        """, r"load\(\) missing 1 required positional argument: 'Loader'"),

    "qweb_ast_py38": ("""
        from lxml import etree
        from odoo.addons.base.ir.ir_qweb.qweb import QWeb
        # t-set, t-foreach and t-call compile to functions with a lineno of their own.
        templates = etree.fromstring('''<templates>
        <t t-name="page">
          <t t-set="n" t-value="3"/>
          <t t-foreach="[1, 2]" t-as="i"><b t-att-class="'c' if i_first else None" t-esc="i * n"/></t>
          <t t-call="item"><t t-set="v" t-value="True"/></t>
        </t>
        <t t-name="item"><i t-esc="v"/></t>
        </templates>''')
        html = QWeb().render('page', {}, load=lambda name, options: templates).decode()
        assert '<b class="c">3</b><b>6</b>' in html and '<i>True</i>' in html, html
        """, r'required field "posonlyargs" missing from arguments'),

    "thread_isalive": ("""
        import threading
        import time
        from odoo.tests.common import HttpCase
        # What HttpCase does after each browser test (and ThreadedServer.stop on shutdown).
        request = threading.Thread(target=time.sleep, args=(0.3,),
                                   name='odoo.service.http.request.1')
        request.start()
        HttpCase._wait_remaining_requests(None)
        assert not request.is_alive()
        """, r"'Thread' object has no attribute 'isAlive'"),

    "safe_eval_opcodes": ("""
        from odoo.tools.safe_eval import const_eval, expr_eval, safe_eval
        assert safe_eval("[x for x in (1,2)]") == [1, 2]
        assert safe_eval("[('id', 'in', ids), '|', ('a', '=', b)]", {'ids': [1], 'b': None}) \\
            == [('id', 'in', [1]), '|', ('a', '=', None)]
        assert safe_eval("dict(d, k=1).get('k') if x is not None and x not in l else 0",
                         {'d': {}, 'x': 1, 'l': []}) == 1
        assert safe_eval("f'{a}-{b!r}'", {'a': 1, 'b': 'x'}) == "1-'x'"
        assert const_eval("[1, 2, (3, 4), {'foo': 'bar'}, {5, 6}]")[4] == {5, 6}
        assert expr_eval("[1, 2] * 2 + [3 in (3,)]") == [1, 2, 1, 2, True]
        # Server actions and cron code: statements, loops, exceptions, assert.
        values = {'l': [3, None, 4]}
        safe_eval('''
        total = 0
        for i in l:
            if i is None:
                continue
            try:
                total += 10 // (i - 3)
            except Exception as e:
                total += 100
        assert total == 110, total
        result = total
        ''', values, mode='exec', nocopy=True)
        assert values['result'] == 110
        """, r"ValueError: forbidden opcode\(s\)"),
}


def declared_patches():
    """The patch names in EARLY and LATE of runtime/py311compat.py, read without importing it."""
    names = []
    for node in ast.parse(COMPAT.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("EARLY", "LATE"):
            names += [element.id for element in node.value.elts]
    return names


def run(snippet, skip=""):
    env = dict(os.environ, ODOO_PY311_SKIP=skip)
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(snippet)],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=300, check=False)


def test_every_patch_has_a_case():
    assert sorted(declared_patches()) == sorted(CASES)


@pytest.mark.parametrize("patch", sorted(CASES))
def test_patch_is_needed(patch):
    snippet, failure = CASES[patch]
    patched = run(snippet)
    assert patched.returncode == 0, f"fails with every patch applied:\n{patched.stderr}"
    unpatched = run(snippet, skip=patch)
    assert unpatched.returncode != 0, f"still works without {patch}"
    assert re.search(failure, unpatched.stderr), (
        f"without {patch}, expected {failure!r}, got:\n{unpatched.stderr[-3000:]}")
