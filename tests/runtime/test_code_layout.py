"""The code's shape: no import cycle, and a README that lists every setting as the code has it."""
import ast
import os
import re
from pathlib import Path

from harness import ROOT
from odoo.addons.queue_celery.core import settings

PACKAGES = {"queue_celery": ROOT / "addons" / "queue_celery",
            "queue_celery18": ROOT / "addons-18.0" / "queue_celery"}


def modules(package, path):
    """{module name: file} of an addon, its core subpackage included."""
    found = {}
    files = [Path(folder) / name for folder, _dirs, names in os.walk(path, followlinks=True)
             for name in names if name.endswith(".py")]
    for file in sorted(files):
        parts = list(file.relative_to(path).with_suffix("").parts)
        if parts[0] == "tests":
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package] + parts)] = file
    return found


def imports(module, file, known):
    """The modules of ``known`` that ``module`` imports, wherever in the file it does."""
    is_package = file.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = module.split(".")[:len(module.split(".")) - node.level + is_package]
        target = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            name = target + "." + alias.name
            found.add(name if name in known else target)
    return found & set(known) - {module}


def cycle(graph):
    """A cycle of ``graph`` as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for successor in sorted(graph[node]):
            if state.get(successor) == "open":
                return path[path.index(successor):] + [successor]
            if successor not in state:
                found = visit(successor, path + [successor])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_no_module_of_either_addon_imports_itself_back():
    for package, path in PACKAGES.items():
        if not path.exists():
            continue
        known = modules(package, path)
        graph = {module: imports(module, file, known) for module, file in known.items()}
        assert cycle(graph) is None, "import cycle: %s" % " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_readme_lists_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `(celery_\w+|queue_celery\.\w+)` \| `?([^`|]*?)`? \|",
                           (ROOT / "README.md").read_text(), re.M))
    expected = {"celery_" + name: setting.default for name, setting in settings.OPTIONS.items()}
    expected.update({"queue_celery." + name: setting.default
                     for name, setting in settings.PARAMETERS.items()})
    assert set(rows) == set(expected)
    for name, default in expected.items():
        assert rows[name] == ("empty" if default == "" else str(default)), name
