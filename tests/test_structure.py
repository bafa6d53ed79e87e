"""The package's module graph: no import circles (in-function and TYPE_CHECKING imports counted), pipeline stages
that import only downstream, no private names used across modules, and a wheel that lists every package."""
import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "reid_hub"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _graph() -> tuple[dict[str, set[str]], int]:
    """Every import of a reid_hub module by another (at module level, in functions, under TYPE_CHECKING), and how
    many of them sit inside functions."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    in_function = 0
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        tree = ast.parse(p.read_text())
        inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reid_hub"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            hit = {c for c in targets if c in mods and c != m}
            edges[m] |= hit
            in_function += bool(hit) and id(node) in inside
    return edges, in_function


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


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


#: the pipeline stages in order: a stage imports only stages before it (and itself); the package's own
#: `reid_hub/__init__` (the facade: from_pretrained, create_model) sits after the models it re-exports
STAGES = ["errors", "resources", "lazy", "data", "scoring", "models", "(root)", "training", "video", "gallery",
          "discovery", "population", "evaluation", "scale", "app", "cli", "__main__"]


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def _violations(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    rank = {s: i for i, s in enumerate(STAGES)}
    return sorted({(a, b) for a, tg in edges.items() for b in tg
                   if rank.get(_stage(b), len(STAGES)) > rank.get(_stage(a), -1)})


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_function_level_and_type_checking_imports(tmp_path):
    edges, in_function = _graph()
    assert "reid_hub.scoring.calibration" in edges["reid_hub.gallery.recalibration"]  # module level
    assert "reid_hub.app.demo" in edges["reid_hub.cli.cmd_serve"]  # inside a function
    assert in_function > 0


def test_reid_hub_has_no_import_circles():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_stages_import_only_earlier_stages():
    edges, _ = _graph()
    assert _violations({"reid_hub.video.x": {"reid_hub.gallery.store"}, "reid_hub.app.y": {"reid_hub.cli"},
                        "reid_hub.discovery.z": {"reid_hub.evaluation.scorers"},
                        "reid_hub.gallery.w": {"reid_hub.scoring.fusion"}}) == [
        ("reid_hub.app.y", "reid_hub.cli"), ("reid_hub.discovery.z", "reid_hub.evaluation.scorers"),
        ("reid_hub.video.x", "reid_hub.gallery.store")]
    assert set(STAGES) >= {_stage(m) for m in edges}  # every package has its place in the order
    assert _violations(edges) == []


def test_the_gallery_store_imports_none_of_its_helpers():
    edges, _ = _graph()
    helpers = {m for m in edges if _under(m, "reid_hub.gallery")} - {
        "reid_hub.gallery.store", "reid_hub.gallery.index", "reid_hub.gallery.features", "reid_hub.gallery.settings",
        "reid_hub.gallery"}
    assert not edges["reid_hub.gallery.store"] & helpers


def test_no_private_name_is_used_across_modules():
    """`obj._name` where obj is not self/cls and the module does not define `_name`, or `from x import _name`."""
    used = []
    for m, p in _modules().items():
        tree = ast.parse(p.read_text())
        own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        own |= {t.attr for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                used += [(m, a.name) for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in own and node.attr not in ("_asdict", "_fields", "_replace")  # namedtuple API
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                used.append((m, ast.unparse(node)))
    assert used == []


def test_the_wheel_lists_every_package_and_ships_the_default_model():
    cfg = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {m for m, p in _modules().items() if p.name == "__init__.py"}
    assert set(cfg["packages"]) - {"reid_hub.model_cards", "reid_hub.examples"} == found
    assert cfg["package-dir"] == {"reid_hub.model_cards": "model_cards", "reid_hub.examples": "examples"}
    from reid_hub import DEFAULT_MODEL

    assert (ROOT.parent / "model_cards" / DEFAULT_MODEL / "model.safetensors").is_file()


def test_every_declared_make_target_exists():
    import re

    text = (ROOT.parent / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    rules = set(re.findall(r"^([A-Za-z][\w-]*):", text, re.M))
    assert phony and set(phony) <= rules


def test_benchmarks_readme_has_a_paragraph_per_script_and_no_script_imports_a_sibling_benchmark():
    import re

    bench = ROOT.parent / "benchmarks"
    scripts = {p.name for p in bench.glob("*.py")}
    named = set(re.findall(r"\*\*([\w]+\.py)\*\*", (bench / "README.md").read_text()))
    assert scripts == named
    siblings = {p.stem for p in bench.glob("*.py")} - {"common"}
    for p in bench.glob("*.py"):
        tree = ast.parse(p.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not imported & siblings, p.name
        assert "sys.path.insert" not in p.read_text(), p.name


#: the modules that own SQLite tables: the gallery store (and its proposals), the job store, the answer log
SQL_OWNERS = {"reid_hub.gallery.store", "reid_hub.gallery.features", "reid_hub.gallery.proposals", "reid_hub.app.jobs",
              "reid_hub.discovery.answers"}


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr in names]


def test_no_sql_outside_the_modules_that_own_their_tables():
    runs = {m for m, p in _modules().items()
            if _calls(ast.parse(p.read_text()), {"execute", "executemany", "executescript", "backup"})}
    assert runs <= SQL_OWNERS, sorted(runs - SQL_OWNERS)


def test_routes_are_short_and_the_service_is_the_only_door():
    """Every REST route is at most 40 lines; neither routes nor the UI reach the gallery or the lock themselves."""
    long_routes, reach = [], []
    app = ROOT / "app"
    for p in sorted((app / "routes").glob("*.py")) + sorted((app / "ui").glob("*.py")) + [app / "api.py"]:
        tree = ast.parse(p.read_text())
        for f in ast.walk(tree):
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                    and d.func.attr in ("get", "post", "patch", "put", "delete") for d in f.decorator_list):
                if f.end_lineno - f.lineno + 1 > 40:
                    long_routes.append(f"{p.name}:{f.name}")
        reach += [f"{p.name}:{n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                  and n.attr in ("gallery", "lock", "_gallery", "_lock") and isinstance(n.value, ast.Name)
                  and n.value.id in ("svc", "service")]
    assert long_routes == [] and reach == []


def test_package_docstrings_name_their_modules():
    """A package that lists its modules (in backticks) lists every one of them."""
    missing = {}
    for init in sorted(ROOT.rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if doc.count("`") < 6:  # a package described in prose, not by module
            continue
        names = [p.stem for p in init.parent.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        names += [p.name for p in init.parent.iterdir() if (p / "__init__.py").is_file()]
        gone = [n for n in names if f"`{n}`" not in doc and f"`{n}/`" not in doc]
        if gone:
            missing[str(init.parent.relative_to(ROOT.parent))] = gone
    assert missing == {}
