"""The package's shape: no import circles among ntk_utils modules, small modules.

Imports are read from the syntax tree, including those inside functions (a lazy import hides a
circle from Python but not from a reader).
"""
import ast

from tests.conftest import ROOT

PACKAGE = ROOT / "ntk_utils"
MAX_LINES = 520


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """{module: set of ntk_utils modules it imports anywhere in its file}. Importing a subpackage
    (``ntk_utils.sections``) counts as importing its modules: it loads them by name."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {_module_name(p) for p in PACKAGE.rglob("__init__.py")} - {"ntk_utils"}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            targets += [m for t in targets if t in packages for m in modules if m.startswith(t + ".")]
            edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph):
    """Every import circle, as a list of module names (depth-first search)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_ntk_utils_has_no_import_circle():
    graph = import_graph()
    # A package's __init__ importing its submodules is not a circle of concepts.
    graph = {m: {t for t in edges if not m.startswith(t + ".")} for m, edges in graph.items()}
    assert not cycles(graph), cycles(graph)


def test_estimate_is_imported_only_by_the_command_line():
    users = sorted(m for m, edges in import_graph().items() if "ntk_utils.estimate" in edges)
    assert users == ["ntk_utils.grid"], users


def test_no_module_is_large():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    large = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not large, f"modules over {MAX_LINES} lines: {large}"


def test_cache_fingerprint_covers_the_code_that_computes_cached_values():
    """Every module that trained networks and kernels are computed with (what train and kernels
    import, transitively) is in cache.COMPUTES_CACHED, so a change to it gives new cache keys.
    The cache itself and file writing (paths) hold no numbers."""
    from ntk_utils import cache
    graph = import_graph()
    reached, todo = set(), ["ntk_utils.train", "ntk_utils.kernels"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph[module]
    files = {m.removeprefix("ntk_utils.") + ".py" for m in reached} - {"cache.py", "paths.py", "ntk_utils.py"}
    assert files <= set(cache.COMPUTES_CACHED), sorted(files - set(cache.COMPUTES_CACHED))
