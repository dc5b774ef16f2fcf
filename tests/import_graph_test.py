"""The import graph of `dped_tf`, read from the source (nothing is imported): no import
cycle among its modules, and only the CLI and the commands import `dped_tf.commands`;
and `experiments/` on the public API (no `sys.path` edits, no `dped_tf` name with `_`).

Every import counts: top-level and function-local `import` and `from` statements, and
`lazy_import`, `import_now` and `importlib.import_module` calls with a constant name. An
import of a name counts as an import of the module that holds it. Importing
`dped_tf.modeling.generator` also runs `dped_tf/__init__.py` and
`dped_tf/modeling/__init__.py` first, but those edges are left out: Python runs a package
before any of its modules, so they never find it unrun. A package's `__init__` is an edge
where it is named (`from dped_tf import modeling`, `import_now("dped_tf.modeling")`).

Run: python -m pytest tests/import_graph_test.py -q
"""

import ast
import collections
import os

import dped_tf

ROOT = os.path.dirname(os.path.dirname(dped_tf.__file__))
RUN = "python -m pytest tests/import_graph_test.py -q"
IMPORT_CALLS = ("lazy_import", "import_now", "import_module")


def modules_under(root, package):
  """{module name: path} of every `.py` file under `root/package`."""
  found = {}
  for folder, _, files in os.walk(os.path.join(root, package)):
    for file in files:
      if file.endswith(".py"):
        path = os.path.join(folder, file)
        parts = os.path.relpath(path, root)[:-3].split(os.sep)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return found


def imports_in(path, name):
  """[(line, dotted name)] of every import in the file at `path` (module `name`)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(filter(None, [package.rsplit(".", node.level - 1)[0], base]))
      found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
          and isinstance(node.args[0].value, str)
          and getattr(node.func, "id", getattr(node.func, "attr", None)) in IMPORT_CALLS):
      found.append((node.lineno, node.args[0].value))
  return found


def import_graph(files, sources=None):
  """{importer: {imported module of `files`: (path, line)}} for the modules of `files`
  and the extra scripts `sources` ({name: path}); a dotted name resolves to the longest of
  its prefixes that is a module of `files`."""
  graph = collections.defaultdict(dict)
  for name, path in {**files, **(sources or {})}.items():
    for line, dotted in imports_in(path, name):
      parts = dotted.split(".")
      target = next((".".join(parts[:n]) for n in range(len(parts), 0, -1)
                     if ".".join(parts[:n]) in files), None)
      if target and target != name:
        graph[name].setdefault(target, (path, line))
  return graph


def cycles(graph):
  """One shortest cycle (a list of modules, first = last) per strongly connected component
  of more than one module (Tarjan's algorithm, then a breadth-first search)."""
  index, low, stack, on_stack, components = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in graph.get(node, {}):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      component = set()
      while node not in component:
        component.add(stack.pop())
      on_stack.difference_update(component)
      if len(component) > 1:
        components.append(component)

  for node in sorted(graph):
    if node not in index:
      visit(node)
  found = []
  for component in components:
    start = min(component)
    paths = collections.deque([[start]])
    while paths:
      path = paths.popleft()
      targets = [t for t in sorted(graph.get(path[-1], {})) if t in component]
      if start in targets:
        found.append(path + [start])
        break
      paths.extend(path + [t] for t in targets if t not in path)
  return sorted(found)


def describe(graph, cycle):
  return "\n".join(f"  {a} -> {b}  ({os.path.relpath(graph[a][b][0], ROOT)}:{graph[a][b][1]})"
                   for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_among_dped_tf_modules():
  graph = import_graph(modules_under(ROOT, "dped_tf"))
  found = cycles(graph)
  assert not found, (f"{len(found)} import cycle(s) among dped_tf modules (check: {RUN}):\n"
                     + "\n\n".join(describe(graph, cycle) for cycle in found))


def test_only_the_cli_and_the_commands_import_the_commands():
  files = modules_under(ROOT, "dped_tf")
  graph = import_graph(files, modules_under(ROOT, "experiments"))
  edges = sorted((a, b, *where) for a, targets in graph.items() for b, where in targets.items()
                 if b.startswith("dped_tf.commands")
                 and a != "dped_tf.cli" and not a.startswith("dped_tf.commands"))
  assert not edges, (
      f"modules outside dped_tf.cli and dped_tf.commands import a command (check: {RUN}):\n"
      + "\n".join(f"  {a} -> {b}  ({os.path.relpath(path, ROOT)}:{line})"
                  for a, b, path, line in edges))


def test_the_reader_finds_every_kind_of_import_and_the_cycles(tmp_path):
  sources = {
      "pkg/__init__.py": "from pkg import a\n",
      "pkg/a.py": "import os\nfrom pkg.b import thing\n",
      "pkg/b.py": "def f():\n  from pkg import c\n",
      "pkg/c.py": "from pkg.lazy import lazy_import\nx = lazy_import('pkg.a')\n",
      "pkg/lazy.py": "import importlib\nimportlib.import_module('pkg.sub.d')\n",
      "pkg/sub/__init__.py": "",
      "pkg/sub/d.py": "from .. import lazy\nfrom . import e\n",
      "pkg/sub/e.py": "import pkg.sub.d as d\n",
  }
  for name, text in sources.items():
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(text)
  files = modules_under(str(tmp_path), "pkg")
  assert sorted(files) == ["pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.lazy", "pkg.sub",
                           "pkg.sub.d", "pkg.sub.e"]
  graph = import_graph(files)
  assert {a: sorted(targets) for a, targets in graph.items()} == {
      "pkg": ["pkg.a"], "pkg.a": ["pkg.b"], "pkg.b": ["pkg.c"], "pkg.c": ["pkg.a", "pkg.lazy"],
      "pkg.lazy": ["pkg.sub.d"], "pkg.sub.d": ["pkg.lazy", "pkg.sub.e"],
      "pkg.sub.e": ["pkg.sub.d"]}
  assert graph["pkg.c"]["pkg.a"][1] == 2
  assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
                           ["pkg.lazy", "pkg.sub.d", "pkg.lazy"]]


def private_uses_and_path_edits(path):
  """[(line, what)]: `sys.path` changed, or a `dped_tf` name that starts with `_` used
  (imported from dped_tf, or an attribute of a dped_tf module imported by the file)."""
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  dped_names, found = set(), []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dped_tf"):
      for alias in node.names:
        dped_names.add(alias.asname or alias.name)
        if alias.name.startswith("_"):
          found.append((node.lineno, f"from {node.module} import {alias.name}"))
    elif isinstance(node, ast.Import):
      dped_names.update(a.asname or a.name.split(".")[0] for a in node.names
                        if a.name.startswith("dped_tf"))
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
        and not node.attr.startswith("__") and isinstance(node.value, ast.Name)
        and node.value.id in dped_names):
      found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    if (isinstance(node, ast.Attribute) and node.attr == "path"
        and getattr(node.value, "id", None) == "sys"):
      found.append((node.lineno, "sys.path"))
  return sorted(found)


def test_experiments_use_the_public_api_only():
  folder = os.path.join(ROOT, "experiments")
  bad = [f"  experiments/{name}:{line}: {what}" for name in sorted(os.listdir(folder))
         if name.endswith(".py")
         for line, what in private_uses_and_path_edits(os.path.join(folder, name))]
  assert not bad, "experiments reach past the public API:\n" + "\n".join(bad)


def test_the_public_api_check_finds_private_names_and_path_edits(tmp_path):
  script = tmp_path / "x.py"
  script.write_text("import sys\nsys.path.insert(0, 'tests')\nfrom dped_tf import inference\n"
                    "from dped_tf.enhancement.tiles import _plan\nimport os\n"
                    "inference._Photo = None\nos._exit\n")
  assert private_uses_and_path_edits(str(script)) == [
      (2, "sys.path"), (4, "from dped_tf.enhancement.tiles import _plan"),
      (6, "inference._Photo")]
