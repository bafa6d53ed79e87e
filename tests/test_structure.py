"""The package's module graph has no import circles (function-level imports included)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "reid_hub"


def _graph() -> dict[str, set[str]]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        tree = ast.parse(p.read_text())
        for main_block in [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]:
            tree.body.remove(main_block)  # a script entry point runs only as __main__, never on import
        for node in list(ast.walk(tree)):  # imports for type checkers only never run
            body = getattr(node, "body", None)
            for block in [n for n in (body if isinstance(body, list) else []) if isinstance(n, ast.If)
                          and "TYPE_CHECKING" in ast.unparse(n.test)]:
                node.body.remove(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                for c in [target] + [f"{target}.{a.name}" for a in node.names]:
                    if c in mods and c != m:
                        edges[m].add(c)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif not state.get(v):
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if not state.get(u):
            visit(u, [])
    return found


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_reid_hub_has_no_import_circles():
    edges = _graph()
    assert "reid_hub.scoring.calibration" in edges["reid_hub.gallery.recalibration"]  # the graph sees real edges
    assert _cycles(edges) == []
