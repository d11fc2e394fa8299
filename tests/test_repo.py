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
