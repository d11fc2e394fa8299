"""The reward registry: built-in names, dotted paths, entry points from an installed package, errors."""

import importlib
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from proguard.scoring.compose import build_reward, targets_from_columns
from proguard.scoring.registry import (
    ENTRY_POINT_GROUP,
    RewardEntry,
    RewardRegistry,
    RewardRegistryError,
    default_registry,
)
from rewards.category import CategoryReward
from rewards.types import Target

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
"""A user's reward plugin, installed as its own distribution."""


class Constant:
    """Gives every completion the same score."""

    def __init__(self, value: float = 1.0):
        self.value = value

    def __call__(self, parsed, targets):
        return [self.value for _ in parsed]
'''


def install_fake_dist(root: Path, dist: str, module: str, entry_points: dict[str, str]) -> None:
    """A minimal installed distribution: a module plus a .dist-info with METADATA and entry_points.txt."""
    (root / f"{module}.py").write_text(PLUGIN, encoding="utf-8")
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n", encoding="utf-8")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A temp dir on sys.path holding an installed plugin distribution ``r3-plugin``."""
    install_fake_dist(tmp_path, "r3_plugin", "r3plugin_mod", {"constant": "r3plugin_mod:Constant"})
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_builtins_are_registered_through_the_entry_point_table():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    for name in ("format", "binary", "category"):
        assert name in table
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert {k: installed.get(k) for k in table} == table, "re-run `pip install -e .` after editing entry points"
    assert default_registry().resolve("category") is CategoryReward


def test_build_by_name_with_options():
    module = default_registry().build("category", {"partial": 0.25})
    assert isinstance(module, CategoryReward) and module.partial == 0.25


def test_entry_point_from_an_installed_package(plugin_path):
    registry = RewardRegistry.from_entry_points()
    assert "constant" in registry.names() and "category" in registry.names()
    entry = registry.entry("constant")
    assert entry.target == "r3plugin_mod:Constant" and "r3_plugin" in entry.origin
    module = registry.build("constant", {"value": 0.25})
    assert module([None, None], [Target("image", "safe")] * 2) == [0.25, 0.25]
    reward = build_reward([{"name": "constant", "options": {"value": 2.0}}], registry=registry)
    assert reward(completions=["x"], modality=["image"], request_label=["safe"]) == [2.0]
    info = registry.describe("constant")
    assert info.summary == "Gives every completion the same score." and [o.name for o in info.options] == ["value"]


def test_dotted_path(plugin_path):
    registry = RewardRegistry()  # no entries at all: dotted paths need none
    module = registry.build("r3plugin_mod:Constant", {"value": 3.0})
    assert module([None], [Target("image", "safe")]) == [3.0]
    assert registry.resolve("rewards.category:CategoryReward") is CategoryReward


def test_dotted_path_errors():
    registry = RewardRegistry()
    with pytest.raises(RewardRegistryError, match="cannot import module 'no_such_pkg.mod'"):
        registry.resolve("no_such_pkg.mod:Thing")
    with pytest.raises(RewardRegistryError, match="no attribute 'CategoryRewrd'.*did you mean 'CategoryReward'"):
        registry.resolve("rewards.category:CategoryRewrd")
    with pytest.raises(RewardRegistryError, match="not a class or function"):
        registry.resolve("proguard.scoring.registry:ENTRY_POINT_GROUP")
    with pytest.raises(RewardRegistryError, match="package.module:Name"):
        registry.resolve("rewards.category:")


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(RewardRegistryError) as err:
        default_registry().build("categroy")
    msg = str(err.value)
    assert "unknown reward 'categroy'" in msg and "did you mean 'category'" in msg
    for name in ("binary", "category", "format"):
        assert name in msg
    assert "package.module:Name" in msg and ENTRY_POINT_GROUP in msg


def test_duplicate_name_from_two_packages_is_rejected(plugin_path):
    install_fake_dist(plugin_path, "r3_other", "r3other_mod", {"constant": "r3other_mod:Constant"})
    importlib.invalidate_caches()
    registry = RewardRegistry.from_entry_points()
    with pytest.raises(RewardRegistryError, match="'constant' is registered more than once.*r3other_mod:Constant"):
        registry.build("constant")
    assert registry.build("category")  # the other names still work


def test_option_errors_name_the_option():
    registry = default_registry()
    with pytest.raises(RewardRegistryError, match="unknown option 'partail'.*did you mean 'partial'.*partial, wrong_id"):
        registry.build("category", {"partail": 0.5})
    with pytest.raises(RewardRegistryError, match="reward 'category': option partial"):
        registry.build("category", {"partial": 2})


def test_functions_are_rewards_without_options():
    def always_one(parsed, targets):
        return [1.0] * len(parsed)

    registry = RewardRegistry().with_entries({"one": always_one})
    assert registry.build("one") is always_one
    with pytest.raises(RewardRegistryError, match="function, it takes no options"):
        registry.build("one", {"x": 1})


def test_a_plugin_that_fails_to_import_is_reported_by_describe(tmp_path, monkeypatch):
    (tmp_path / "r3broken.py").write_text("raise ImportError('needs a missing library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = RewardRegistry([RewardEntry("broken", "r3broken:Thing", "package r3broken")])
    info = registry.describe("broken")
    assert info.error and "needs a missing library" in info.error
    with pytest.raises(RewardRegistryError, match="reward 'broken'.*needs a missing library"):
        registry.build("broken")


# ---------------------------------------------------------------------------------------------
# The documented plugin, really installed with pip (docs/rewards.md "Writing a plugin")
# ---------------------------------------------------------------------------------------------
def doc_snippet(name: str) -> str:
    """The fenced block that follows ``<!-- snippet: name -->`` in docs/rewards.md."""
    text = (ROOT / "docs" / "rewards.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- snippet: {name} -->\n```\w+\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/rewards.md has no snippet {name!r}"
    return found.group(1)


@pytest.fixture
def installed_doc_plugin(tmp_path, monkeypatch):
    """pip-installs a package made of the documented plugin and entry point into a temp dir on sys.path."""
    pytest.importorskip("setuptools", reason="building the plugin package needs setuptools in this environment")
    src = tmp_path / "src"
    src.mkdir()
    (src / "my_rewards.py").write_text(doc_snippet("plugin"), encoding="utf-8")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "my-rewards"\nversion = "0.1"\n[tool.setuptools]\npy-modules = ["my_rewards"]\n'
        + doc_snippet("entry-point"),
        encoding="utf-8",
    )
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "--target", str(site), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    default_registry.cache_clear()
    yield site
    default_registry.cache_clear()
    sys.modules.pop("my_rewards", None)


def test_documented_plugin_installed_with_pip(installed_doc_plugin, tmp_path, capsys):
    from proguard.cli import main as cli_main
    from proguard.protocol import format_answer
    from proguard.testing.reward_contract import check_reward

    assert len(doc_snippet("plugin").strip().splitlines()) < 20
    assert (installed_doc_plugin / "my_rewards-0.1.dist-info" / "entry_points.txt").is_file()
    registry = default_registry()
    entry = registry.entry("brevity")
    assert entry.target == "my_rewards:Brevity" and entry.origin == "package my-rewards"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(doc_snippet("recipe"), encoding="utf-8")
    reward = build_reward(recipe)
    assert [c.name for c in reward.components] == ["format", "binary", "category", "brevity"]
    assert reward.components[-1].weight == 0.2 and reward.components[-1].module.words == 80
    short, long_ = "Looks fine.", " ".join(["word"] * 120)  # 2 words: 1.0; 120 of 80: 2 - 1.5 = 0.5
    completions = [format_answer("image", "safe", None, None, r) for r in (short, long_)]
    assert reward(completions=completions, modality=["image"] * 2, request_label=["safe"] * 2) == [2.2, 2.1]
    assert check_reward(registry.build("brevity", {"words": 5}), n=50).completions > 100
    # the dotted path named in the recipe's comment works without the entry point too
    dotted = RewardRegistry().build("my_rewards:Brevity", {"words": 80})
    assert dotted(reward.breakdown(completions, targets_from_columns(
        {"modality": ["image"] * 2, "request_label": ["safe"] * 2}, 2)).parsed, [None, None]) == [1.0, 0.5]
    assert cli_main(["rewards", "list"]) == 0
    assert "  brevity  (my_rewards:Brevity, package my-rewards)\n" in capsys.readouterr().out


@pytest.mark.parametrize("name, options", [
    ("subprocess:Popen", {"args": "touch {marker}", "shell": True}),
    ("os:system", {}),
    ("shutil:move", {}),
    ("builtins:print", {}),
])
def test_dotted_names_are_checked_against_the_contract_before_they_run(name, options, tmp_path):
    """Neither the build nor --check constructs or calls a non-reward; both refuse it the same way."""
    from proguard.train.errors import TrainInputError
    from proguard.train.recipe import load_recipe
    from proguard.train.run import validate

    marker = tmp_path / "ran"
    options = {k: (v.format(marker=marker) if isinstance(v, str) else v) for k, v in options.items()}
    spec = [{"name": name, "options": options}] if options else [{"name": name}]
    with pytest.raises(RewardRegistryError, match=r"not a reward module|not a class or function"):
        build_reward(spec)
    recipe = load_recipe(None, [f"rewards=[{{name: '{name}'}}]"])
    with pytest.raises(TrainInputError, match=r"rewards\[0\]: .*(not a reward module|not a class or function)"):
        validate(recipe)
    assert not marker.exists()


def test_the_contract_check_refuses_non_rewards_and_accepts_the_reward_shapes():
    from proguard.scoring.registry import check_reward_contract

    class NotCallable:
        def __init__(self, x=1):
            pass

    class WrongArity:
        def __call__(self, parsed):
            return []

    class Good:
        def __call__(self, parsed, targets):
            return []

    def good_fn(parsed, targets):
        return []

    for bad, why in [(NotCallable, "not callable"), (WrongArity, "does not take"), (42, "not a class or function"),
                     (lambda parsed: [], "does not take")]:
        with pytest.raises(RewardRegistryError, match=why):
            check_reward_contract("x", bad)
    for ok in (Good, good_fn, Good(), CategoryReward):
        check_reward_contract("x", ok)
