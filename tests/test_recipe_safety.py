"""Recipe safety: every float key must be finite (one schema rule), a malformed top level is a one-line error."""

from __future__ import annotations

import dataclasses

import pytest

from proguard.train.recipe import Recipe, RecipeError, load_recipe
from proguard.train.recipe.guards import non_finite


def _float_keys(obj, prefix=""):
    """Every float field of every section of the schema, found by walking it (not a hand-made list)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _float_keys(value, key + ".")
        elif isinstance(value, float) and not isinstance(value, bool):
            yield key


FLOAT_KEYS = sorted(_float_keys(Recipe()))


def test_the_schema_has_float_keys_in_several_sections():
    assert {"grpo.learning_rate", "grpo.beta", "grpo.temperature", "grpo.epsilon"} <= set(FLOAT_KEYS)
    assert len({k.split(".")[0] for k in FLOAT_KEYS}) >= 3


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf_are_rejected_for_every_float_key(key, value):
    with pytest.raises(RecipeError, match=rf"command line: {key}: must be a finite number"):
        load_recipe(None, [f"{key}={value}"])


def test_non_finite_numbers_in_free_form_sections_are_rejected_too():
    with pytest.raises(RecipeError, match=r"grpo\.extra\.adam_beta1: must be a finite number"):
        load_recipe(None, ["grpo.extra.adam_beta1=.nan"])
    with pytest.raises(RecipeError, match=r"rewards\[0\]\.weight: must be a finite number"):
        load_recipe(None, ["rewards=[{name: format, weight: .inf}]"])
    assert non_finite({"a": [1.0, 2, "nan"]}) is None  # finite numbers and strings pass
    assert non_finite({"a": [1.0, float("inf")]}) == "a[1]: must be a finite number, got inf"


def test_a_recipe_whose_top_level_is_a_list_is_a_one_line_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- model\n- grpo\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping of sections"):
        load_recipe(path)


# ---- secrets and reach ---------------------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"


def test_env_interpolation_is_off_by_default_and_never_written(monkeypatch, capsys, tmp_path):
    from proguard.cli import main as cli_main
    from proguard.train.recipe import recipe_to_yaml

    monkeypatch.setenv("PG_TEST_SECRET", "sk-do-not-leak")
    override = "logging.run_name=${oc.env:PG_TEST_SECRET}"
    with pytest.raises(RecipeError, match=r"logging\.run_name: .*off by default.*--allow-env PG_TEST_SECRET"):
        load_recipe(None, [override])
    with pytest.raises(RecipeError, match="--allow-env PG_TEST_SECRET"):
        load_recipe(None, [override], allow_env=["OTHER"])
    path = tmp_path / "r.yaml"
    path.write_text("logging:\n  run_name: run-${oc.env:PG_TEST_SECRET}\n")
    assert cli_main(["train", str(path), "--check"]) == 2
    assert "sk-do-not-leak" not in capsys.readouterr().err

    recipe = load_recipe(path, allow_env=["PG_TEST_SECRET"])
    assert recipe.logging.run_name == "run-sk-do-not-leak"  # allowed: the run uses it
    saved = recipe_to_yaml(recipe)
    assert "sk-do-not-leak" not in saved and "run-${oc.env:PG_TEST_SECRET}" in saved
    assert cli_main(["train", str(TINY), override, "--allow-env", "PG_TEST_SECRET", "--check"]) == 0


def test_hub_ids_are_not_downloaded_without_the_option(capsys, tmp_path):
    from proguard.cli import main as cli_main
    from proguard.hub import DownloadNotAllowed, local_model_or_download

    with pytest.raises(DownloadNotAllowed, match="needs --allow-download"):
        local_model_or_download("proguard-tests/no-such-model", False, what="model.name_or_path")
    assert local_model_or_download("proguard-tests/no-such-model", True, what="m") == "proguard-tests/no-such-model"
    assert local_model_or_download(str(tmp_path), False, what="m") == str(tmp_path)
    assert cli_main(["train", str(TINY), "model.name_or_path=proguard-tests/no-such-model",
                     f"output_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "model.name_or_path: proguard-tests/no-such-model is not a local directory" in err and "--allow-download" in err
    assert cli_main(["bench", "--model", "proguard-tests/no-such-model", "--out", str(tmp_path / "b")]) == 2
    assert "--model: proguard-tests/no-such-model is not a local directory" in capsys.readouterr().err


def test_vllm_serve_binds_loopback_by_default_and_warns_loudly_otherwise(monkeypatch, capsys, tmp_path):
    from proguard.cli import main as cli_main
    from proguard.commands.vllm_serve import bound_host, is_loopback
    from proguard.train import rollout as vllm_rollout

    assert bound_host(["vllm", "serve", "m", "--host", "127.0.0.1"]) == "127.0.0.1"
    assert bound_host(["vllm", "serve", "m"]) == "0.0.0.0"  # vLLM's own default: every interface
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    monkeypatch.setattr(vllm_rollout, "vllm_installed", lambda: True)
    base = ["vllm-serve", str(TINY), f"output_dir={tmp_path}", "images.max_pixels=null", "--print"]
    assert cli_main(base) == 0
    captured = capsys.readouterr()
    assert "--host 127.0.0.1" in captured.out and "WARNING" not in captured.err
    assert cli_main([*base, "--host", "0.0.0.0"]) == 0
    assert "WARNING: the vLLM server will listen on 0.0.0.0" in capsys.readouterr().err
