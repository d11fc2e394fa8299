"""Repository rules: the one-way import graph, and CI running exactly the README's test command."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["taxonomy", "synonym_bank", "rewards", "proguard"]  # each may import only those before it


def imported_packages(path: Path) -> set[str]:
    """Top-level project packages a module imports (any import statement, anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(LAYERS)


# Inside proguard/: each unit (a subpackage or a root module) may import its own unit and those of
# earlier layers only. A new unit must be placed here: that is where docs/architecture.md draws it.
PROGUARD_LAYERS = [
    ["errors", "hints", "sanitize"],
    ["media", "plugins"],
    ["outputs", "hub", "protocol", "data", "models"],
    ["inputs"],
    ["scoring", "tasks"],
    ["bench", "testing"],
    ["suites", "distill"],
    ["train"],
    ["commands", "cli"],
]
TEST_ONLY = {"doubles", "task_helpers", "reference_data", "conftest", "tests"}


def _module_imports(path: Path) -> set[str]:
    """Every absolute module a file imports (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "proguard" and len(parts) > 1 else None


def test_proguard_units_form_layers():
    """Subpackages and root modules of proguard/ import only their own unit and earlier layers."""
    layer_of = {u: i for i, layer in enumerate(PROGUARD_LAYERS) for u in layer}
    bad = []
    for f in sorted((ROOT / "proguard").rglob("*.py")):
        rel = f.relative_to(ROOT / "proguard")
        if rel.parts == ("__init__.py",):
            continue
        own = rel.parts[0].removesuffix(".py")
        assert own in layer_of, f"proguard/{rel}: unit {own!r} is in no layer of PROGUARD_LAYERS (tests/test_repo.py)"
        for m in _module_imports(f):
            u = _unit(m)
            if u and u in layer_of and u != own and layer_of[u] >= layer_of[own]:
                bad.append(f"proguard/{rel} imports {m} (layer {layer_of[u]} >= its own {layer_of[own]})")
    assert not bad, "\n".join(bad)


def test_architecture_doc_draws_the_layers_of_proguard_layers():
    """docs/architecture.md lists the same units in the same layers as PROGUARD_LAYERS (one line per layer)."""
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = {int(m.group(1)): [u.strip() for u in m.group(2).split(",")]
             for m in re.finditer(r"^layer (\d+)\s+(\S.*)$", doc, re.MULTILINE)}
    assert [drawn.get(i) for i in range(len(drawn))] == PROGUARD_LAYERS, (
        "docs/architecture.md's layer lines differ from PROGUARD_LAYERS in tests/test_repo.py"
    )


def test_no_import_cycle_between_proguard_modules():
    """No two proguard modules import each other, directly or through others (function-level imports too)."""
    files = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
             for f in (ROOT / "proguard").rglob("*.py")}
    graph = {m: {i for i in _module_imports(f) if i in files and i != m} for m, f in files.items()}
    for m, f in files.items():  # a package's lazy __getattr__ re-exports are not edges
        if f.name == "__init__.py":
            graph[m] = set()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(n):] + [n]) if n in path else n)
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_production_code_never_imports_tests():
    offenders = [
        str(f.relative_to(ROOT))
        for pkg in LAYERS
        for f in (ROOT / pkg).rglob("*.py")
        if {m.split(".")[0] for m in _module_imports(f)} & TEST_ONLY
    ]
    assert not offenders, f"production modules import test code: {offenders}"


@pytest.mark.parametrize("layer", LAYERS)
def test_import_graph_is_one_way(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"package {layer} has no modules"
    bad = {str(f.relative_to(ROOT)): sorted(imported_packages(f) - allowed) for f in files}
    assert not {k: v for k, v in bad.items() if v}, f"{layer} may import only {sorted(allowed)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_cmds = [b for b in blocks if "pytest" in b]
    assert len(test_cmds) == 1, "the README must have exactly one test command block"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmds[0].strip() in ci.splitlines()
    assert "set -euo pipefail" in ci  # any failure, pytest's exit 5 ("no tests") included, fails CI
