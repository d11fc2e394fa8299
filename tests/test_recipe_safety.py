"""Recipe safety: every float key must be finite (one schema rule), a malformed top level is a one-line error."""

from __future__ import annotations

import dataclasses

import pytest

from proguard.train.recipe import Recipe, RecipeError, check_finite, load_recipe


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
    check_finite({"a": [1.0, 2, "nan"]})  # finite numbers and strings pass


def test_a_recipe_whose_top_level_is_a_list_is_a_one_line_error(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- model\n- grpo\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping of sections"):
        load_recipe(path)
