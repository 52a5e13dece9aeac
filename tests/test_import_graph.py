"""The project's modules import one another without cycles, and use no private names.

Read with `ast` (nothing is imported), so the check also sees imports inside
functions, which Python resolves only when they run: a cycle there works until the
day someone moves the import to the top. A module that reaches into another's
`_private` name ties the two together as tightly, so that is refused as well.
"""
import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP_LEVEL = ("run_lfads.py", "lfads.py", "distributions.py", "utils.py")
PACKAGES = ("lfads_tf2", "synth_data")
# Not a package, but its scripts must keep to the public names too.
SCRIPTS = "scripts"


def project_modules(root):
    """{dotted module name: file path} of every project module (and script) under root."""
    modules = {}
    for name in TOP_LEVEL:
        if os.path.exists(os.path.join(root, name)):
            modules[name[:-3]] = os.path.join(root, name)
    for package in PACKAGES:
        pattern = os.path.join(root, package, "**", "*.py")
        for path in sorted(glob.glob(pattern, recursive=True)):
            rel = os.path.relpath(path, root)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            modules[".".join(rel)] = path
    for path in sorted(glob.glob(os.path.join(root, SCRIPTS, "*.py"))):
        modules[SCRIPTS + "." + os.path.basename(path)[:-3]] = path
    return modules


def _resolve(dotted, modules):
    """The longest prefix of a dotted name that is a project module, or None."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in modules:
            return name
    return None


def read_imports(module, tree, modules):
    """Every import statement of the tree, at any depth, as three lists:
    edges [(project module imported, line)], aliases {local name: project module},
    private [(name, module, line)] for `from module import _name`.

    `from P import x` imports P.x when that is a module, else P; a relative import is
    resolved against the module's package.
    """
    is_package = os.path.basename(modules[module]) == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    edges, aliases, private = [], {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name, modules)
                if target is None:
                    continue
                edges.append((target, node.lineno))
                if alias.asname:  # `import a.b as c` binds c to a.b
                    aliases[alias.asname] = target
                else:  # `import a.b` binds a
                    top = alias.name.split(".")[0]
                    if top in modules:
                        aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[:len(parts) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            owner = _resolve(base, modules) if base else None
            for alias in node.names:
                full = base + "." + alias.name if base else alias.name
                if full in modules:
                    edges.append((full, node.lineno))
                    aliases[alias.asname or alias.name] = full
                elif owner is not None:
                    edges.append((owner, node.lineno))
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append((alias.name, owner, node.lineno))
    return edges, aliases, private


def import_graph(root):
    """({module: {imported module: first line}}, [private-name uses as text])."""
    modules = project_modules(root)
    graph, private = {}, []
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        edges, aliases, private_imports = read_imports(module, tree, modules)
        graph[module] = {}
        for target, line in edges:
            if target != module:
                graph[module].setdefault(target, line)
        private += ["%s:%d imports %s from %s" % (path, line, name, owner)
                    for name, owner, line in private_imports if owner != module]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                owner = _dotted(node.value, aliases, modules)
                if owner is not None and owner != module:
                    private.append("%s:%d uses %s.%s" % (path, node.lineno, owner,
                                                         node.attr))
    return graph, private


def _dotted(node, aliases, modules):
    """The project module an expression like `training` or `lfads_tf2.train.loop` names."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        parent = _dotted(node.value, aliases, modules)
        if parent is not None and parent + "." + node.attr in modules:
            return parent + "." + node.attr
    return None


def find_cycle(graph):
    """One import cycle as [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the DFS path, "done" after

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def describe_cycle(graph, cycle):
    return " -> ".join("%s (line %d)" % (a, graph[a][b])
                       for a, b in zip(cycle, cycle[1:])) + " -> " + cycle[-1]


def test_the_graph_sees_the_modules_and_imports_inside_functions():
    graph, _ = import_graph(ROOT)
    assert {"run_lfads", "lfads", "utils", "lfads_tf2.train.loop",
            "lfads_tf2.train.checkpoints", "lfads_tf2.train.steps"} <= set(graph)
    # run_lfads imports the training loop inside main(), not at the top
    assert "lfads_tf2.train.loop" in graph["run_lfads"]
    assert "lfads_tf2.train.checkpoints" in graph["lfads_tf2.train.loop"]


def test_no_import_cycle():
    graph, _ = import_graph(ROOT)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + describe_cycle(graph, cycle)


def test_a_cycle_is_found_and_reported():
    graph = {"a": {"b": 3}, "b": {"c": 7}, "c": {"a": 9}, "d": {"a": 1}}
    cycle = find_cycle(graph)
    assert cycle == ["a", "b", "c", "a"]
    assert describe_cycle(graph, cycle) == "a (line 3) -> b (line 7) -> c (line 9) -> a"
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 2, "b": 2}}) is None


def test_no_module_uses_another_modules_private_names():
    _, private = import_graph(ROOT)
    assert private == [], "\n".join(private)


def test_private_uses_are_found(tmp_path):
    (tmp_path / "lfads_tf2").mkdir()
    (tmp_path / "lfads_tf2" / "__init__.py").write_text("")
    (tmp_path / "lfads_tf2" / "a.py").write_text("def _f():\n    pass\n")
    (tmp_path / "utils.py").write_text(
        "import lfads_tf2.a\n"
        "def g():\n"
        "    from lfads_tf2 import a as mod\n"
        "    return mod._f(), lfads_tf2.a._f\n")
    (tmp_path / "lfads.py").write_text("from lfads_tf2.a import _f\n")
    graph, private = import_graph(str(tmp_path))
    assert graph["utils"] == {"lfads_tf2.a": 1}
    assert sorted(p.split(os.sep)[-1] for p in private) == [
        "lfads.py:1 imports _f from lfads_tf2.a",
        "utils.py:4 uses lfads_tf2.a._f", "utils.py:4 uses lfads_tf2.a._f"]


def test_only_the_search_driver_imports_ray():
    """The search driver owns Ray; the training loop, the model and every other module
    never import it (not even inside a function)."""
    importers = set()
    for module, path in project_modules(ROOT).items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(name == "ray" or name.startswith("ray.") for name in names):
                importers.add(module)
    assert importers == {"lfads_tf2.search.lfads_tune", "lfads_tf2.search.history"}, importers


# The layers, lowest first: a module imports only modules of its own layer or below,
# so the data's path (data -> model -> train -> evaluate -> score) never turns back.
LAYERS = [
    ("errors", ["lfads_tf2", "lfads_tf2.errors", "lfads_tf2.cli"]),
    ("file formats", ["utils"]),
    ("data", ["lfads_tf2.data", "synth_data"]),
    ("model", ["distributions", "lfads_tf2.model", "lfads"]),
    ("train", ["lfads_tf2.train"]),
    ("evaluate", ["lfads_tf2.evaluate"]),
    ("score", ["lfads_tf2.score"]),
    ("search and ensembles", ["lfads_tf2.search", "lfads_tf2.ensemble"]),
    ("command", ["run_lfads"]),
    ("scripts", ["scripts"]),
]


def layer_of(module):
    """Index in LAYERS of the longest prefix that names the module, or None."""
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def upward_imports(graph):
    """["a (layer) imports b (higher layer) at line n", ...]."""
    found = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            if layer_of(target) > layer_of(module):
                found.append("%s (%s) imports %s (%s) at line %d" % (
                    module, LAYERS[layer_of(module)][0], target,
                    LAYERS[layer_of(target)][0], line))
    return found


def test_every_module_has_a_layer():
    graph, _ = import_graph(ROOT)
    assert [m for m in graph if layer_of(m) is None] == []


def test_nothing_imports_upward():
    graph, _ = import_graph(ROOT)
    assert upward_imports(graph) == [], "\n".join(upward_imports(graph))


def test_an_upward_import_is_found():
    graph = {"lfads_tf2.data.binning": {"lfads_tf2.model.layers": 4},
             "lfads_tf2.model.layers": {"lfads_tf2.errors": 2}}
    assert upward_imports(graph) == [
        "lfads_tf2.data.binning (data) imports lfads_tf2.model.layers (model) at line 4"]


def test_no_library_module_imports_the_run_lfads_script():
    graph, _ = import_graph(ROOT)
    library = [m for m in graph if m.split(".")[0] in ("lfads_tf2", "lfads", "utils",
                                                     "distributions", "synth_data")]
    assert [m for m in library if "run_lfads" in graph[m]] == []
