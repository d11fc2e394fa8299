"""One training harness for GRPO and SFT: the SFT path gets every guard the GRPO path has, because they share code.

The SFT recipe goes through the one loader (finite numbers, ``${oc.env:...}`` refused, ``--explain``);
an SFT run goes through the one runner (staged checkpoints, ``metrics.jsonl`` kept in step on resume,
the model card written once at the end). Also: rewards addressable by name on the command line,
``--check`` catching held-out IDs and modalities, backends from one list, every recipe key reaching the
TRL config (or listed as not forwarded), the trainer classes importable, and their private TRL
overrides checked against TRL's signatures.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from proguard.cli import main as cli_main
from proguard.train.recipe import RecipeError, load_recipe, load_sft_recipe

ROOT = Path(__file__).resolve().parents[1]
SFT = str(ROOT / "recipes" / "tiny" / "sft_cpu.yaml")
GRPO = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")
FAST_SFT = [  # short prompts and a handful of rows: seconds per step on 2 cores
    "data.prompt.examples=false", "data.max_samples=4", "sft.per_device_train_batch_size=2", "sft.max_steps=2",
    "logging.report_to=[none]", "logging.logging_steps=1", "checkpoint.save_steps=1",
    "checkpoint.save_total_limit=null", "lengths.max_length=1536",
]


# ---- SFT through the same recipe guards as GRPO ------------------------------------------------
@pytest.mark.parametrize("override", ["sft.learning_rate=nan", "sft.max_grad_norm=inf", "sft.warmup_steps=-inf"])
def test_sft_recipe_refuses_non_finite_numbers(override):
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=rf"{key}: must be a finite number"):
        load_sft_recipe(SFT, [override])


def test_sft_recipe_refuses_environment_reads_unless_allowed(monkeypatch):
    monkeypatch.setenv("PG_RUN", "secret-run")
    with pytest.raises(RecipeError, match=r"logging\.run_name: .*reads the environment variable PG_RUN"):
        load_sft_recipe(SFT, ["logging.run_name=${oc.env:PG_RUN}"])
    r = load_sft_recipe(SFT, ["logging.run_name=${oc.env:PG_RUN}"], allow_env=["PG_RUN"])
    assert r.logging.run_name == "secret-run"
    from proguard.train.recipe import recipe_to_yaml

    assert "secret-run" not in recipe_to_yaml(r) and "${oc.env:PG_RUN}" in recipe_to_yaml(r)


def test_sft_check_refuses_nan_on_the_command_line(capsys):
    assert cli_main(["sft", SFT, "--check", "sft.learning_rate=nan"]) == 2
    assert "sft.learning_rate: must be a finite number, got nan" in capsys.readouterr().err


def test_sft_explain_prints_the_sft_schema(capsys):
    assert cli_main(["sft", "--explain", "sft.learning_rate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sft.learning_rate\n") and "peak learning rate" in out and "allowed: > 0" in out
    assert cli_main(["sft", "--explain", "lengths"]) == 0
    assert "lengths.max_length" in capsys.readouterr().out
    assert cli_main(["sft", "--explain", "grpo.beta"]) == 2  # a GRPO key is not an SFT key
    assert "grpo: unknown key" in capsys.readouterr().err


def test_range_rules_live_beside_the_help_and_hold_for_both_schemas():
    """One rule declaration per key: the same message from either loader, and --explain shows it."""
    for load, path in ((load_recipe, GRPO), (load_sft_recipe, SFT)):
        with pytest.raises(RecipeError, match=r"peft\.lora_dropout: must be in \[0, 1\), got 1.5"):
            load(path, ["peft.lora_dropout=1.5"])
        with pytest.raises(RecipeError, match=r"logging\.report_to\[1\]: must be one of tensorboard, wandb, none"):
            load(path, ["logging.report_to=[none,tensorbord]"])
        with pytest.raises(RecipeError, match=r"model\.dtype: must be one of auto, bfloat16"):
            load(path, ["model.dtype=fp8"])


# ---- rewards by name ---------------------------------------------------------------------------
def test_one_reward_of_a_preset_changes_by_name_on_the_command_line():
    base = load_recipe(GRPO).reward_specs()
    r = load_recipe(GRPO, ["rewards.ood_description.weight=0.5", "rewards.category.options.partial=0.25"])
    specs = {s.name: s for s in r.reward_specs()}
    assert [s.name for s in r.reward_specs()] == [s.name for s in base]  # order and membership kept
    assert specs["ood_description"].weight == 0.5
    assert specs["category"].options == {**dict(base[2].options), "partial": 0.25}
    assert specs["format"] == base[0] and specs["binary"] == base[1]
    # by position too, and null leaves a reward out
    r = load_recipe(GRPO, ["rewards.1.weight=2", "rewards.ood_description=null"])
    assert [(s.name, s.weight) for s in r.reward_specs()] == [("format", 1.0), ("binary", 2.0), ("category", 1.0)]
    # a new name is added; a bad key inside a row is still refused
    r = load_recipe(GRPO, ["rewards.ood_similarity.weight=0.3"])
    assert r.reward_specs()[-1].name == "ood_similarity"
    with pytest.raises(RecipeError, match=r"rewards\[1\]: wieght: unknown key"):
        load_recipe(GRPO, ["rewards.binary.wieght=2"])


def test_reward_list_and_mapping_forms_load_and_round_trip(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("rewards:\n  - {name: format, gate: true}\n  - {name: binary, weight: 2.0}\n")
    r = load_recipe(listed, ["rewards.binary.weight=3"])
    assert [(s.name, s.weight, s.gate) for s in r.reward_specs()] == [("format", 1.0, True), ("binary", 3.0, False)]
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("rewards:\n  format: {gate: true}\n  category: {weight: 0.5}\n")
    r = load_recipe(keyed)
    assert [(s.name, s.weight) for s in r.reward_specs()] == [("format", 1.0), ("category", 0.5)]
    from proguard.train.recipe import recipe_to_yaml

    saved = tmp_path / "saved.yaml"
    saved.write_text(recipe_to_yaml(r))
    assert load_recipe(saved).reward_specs() == r.reward_specs()


# ---- --check without a model -------------------------------------------------------------------
@pytest.mark.parametrize("command,recipe,override,message", [
    ("train", GRPO, "data.tasks.holdout=[C99]", "data.tasks.holdout: unknown node ID(s) 'C99'"),
    ("train", GRPO, "data.modalities=[text,imag]", "data.modalities[1]: unknown modality 'imag' (did you mean 'image'"),
    ("train", GRPO, "rollout.backend=vlm", "rollout.backend: must be one of hf, vllm"),
    ("sft", SFT, "data.distill.tasks.holdout=[C99]", "data.distill.tasks.holdout: unknown node ID(s) 'C99'"),
    ("sft", SFT, "data.modalities=[txt]", "data.modalities[0]: unknown modality 'txt'"),
])
def test_check_validates_what_needs_no_model(capsys, command, recipe, override, message):
    assert cli_main([command, recipe, "--check", override]) == 2
    assert message in capsys.readouterr().err


def test_rollout_backends_come_from_one_list():
    from proguard.train.recipe import ROLLOUT_BACKEND_NAMES, RolloutConfig
    from proguard.train.rollout import ROLLOUT_BACKENDS

    rule = {f.name: f for f in dataclasses.fields(RolloutConfig)}["backend"].metadata["rule"]
    assert tuple(ROLLOUT_BACKENDS) == ROLLOUT_BACKEND_NAMES == rule.choices
    assert all(cls.name == name for name, cls in ROLLOUT_BACKENDS.items())


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, key + ".")
        elif f.name != "extra":
            yield key, obj, f.name, value


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "tensorboard"]
    return "x" if value is None else None


def _undocumented(recipe, kwargs_of, not_forwarded):
    before = kwargs_of(recipe)
    missing = []
    for key, owner, name, value in _leaves(recipe):
        if key in not_forwarded or f"{key.split('.')[0]}.*" in not_forwarded:
            continue
        setattr(owner, name, _changed(value))
        try:
            after = kwargs_of(recipe)
        finally:
            setattr(owner, name, value)
        if after == before:
            missing.append(key)
    return missing


def test_every_grpo_key_reaches_grpo_config_or_is_listed_as_not_forwarded():
    from proguard.train.recipe import grpo_config_kwargs
    from proguard.train.recipe.grpo import NOT_FORWARDED

    r = load_recipe(GRPO)
    assert _undocumented(r, grpo_config_kwargs, NOT_FORWARDED) == []
    assert set(grpo_config_kwargs(r)) - {"use_cpu"} <= _trl_fields("GRPOConfig")


def test_every_sft_key_reaches_sft_config_or_is_listed_as_not_forwarded():
    from proguard.train.recipe import sft_config_kwargs
    from proguard.train.recipe.sft import NOT_FORWARDED

    r = load_sft_recipe(SFT)
    assert _undocumented(r, sft_config_kwargs, NOT_FORWARDED) == []
    assert set(sft_config_kwargs(r)) <= _trl_fields("SFTConfig")


def _trl_fields(name):
    import trl

    return {f.name for f in dataclasses.fields(getattr(trl, name))}


def test_the_forwarding_check_catches_a_dropped_key():
    """The check above can fail: a kwargs builder that drops a key is reported by name."""
    from proguard.train.recipe import sft_config_kwargs
    from proguard.train.recipe.sft import NOT_FORWARDED

    def drops_seed(r):
        kwargs = sft_config_kwargs(r)
        kwargs.pop("seed")
        return kwargs

    assert _undocumented(load_sft_recipe(SFT), drops_seed, NOT_FORWARDED) == ["sft.seed"]


# ---- the trainer classes -----------------------------------------------------------------------
def test_trainer_classes_are_importable_subclassable_and_share_the_mixins():
    from trl import GRPOTrainer, SFTTrainer

    from proguard.train import GuardGRPOTrainer, GuardSFTTrainer
    from proguard.train.trainer_mixins import CardAtEnd, SeededSampler, StagedCheckpoints

    for cls, base in ((GuardGRPOTrainer, GRPOTrainer), (GuardSFTTrainer, SFTTrainer)):
        assert issubclass(cls, base) and cls.__module__.startswith("proguard.train.")
        for mixin in (StagedCheckpoints, SeededSampler, CardAtEnd):
            assert issubclass(cls, mixin)

    class Mine(GuardGRPOTrainer):
        pass

    assert issubclass(Mine, GuardGRPOTrainer)


@pytest.mark.parametrize("which", ["grpo", "sft"])
def test_private_trl_overrides_match_trl_signatures(which):
    """Each private TRL/transformers method proguard overrides still has the parameters the override expects."""
    from trl import GRPOTrainer, SFTTrainer

    from proguard.train.trainer_mixins import private_hooks, signature_problem

    if which == "grpo":
        from proguard.train.grpo_trainer import GuardGRPOTrainer as cls

        base = GRPOTrainer
    else:
        from proguard.train.sft_trainer import GuardSFTTrainer as cls

        base = SFTTrainer
    hooks = private_hooks(cls)
    overridden = {n for k in cls.__mro__[: cls.__mro__.index(base)] for n in vars(k)
                  if n.startswith("_") and not n.startswith("__") and callable(getattr(base, n, None))}
    assert overridden <= set(hooks), f"private overrides without an expected signature: {overridden - set(hooks)}"
    problems = [p for name, expected in hooks.items() if (p := signature_problem(base, name, expected))]
    assert not problems, "\n".join(problems)


def test_signature_check_names_a_changed_method():
    from proguard.train.trainer_mixins import signature_problem

    class Base:
        def _save_checkpoint(self, model, trial, extra): ...

    problem = signature_problem(Base, "_save_checkpoint", ("self", "model", "trial"))
    assert problem and "Base._save_checkpoint(self, model, trial, extra) changed" in problem
    assert "no longer exists" in signature_problem(Base, "_gone", ("self",))


# ---- an SFT run through the one runner ---------------------------------------------------------
@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A 2-step tiny SFT run, checkpoints at both steps, every model card write counted."""
    import proguard.train.model_card as card

    out = tmp_path_factory.mktemp("sft") / "run"
    writes = []
    original = card.model_card

    def counting(r, **kwargs):
        writes.append(kwargs.get("method"))
        return original(r, **kwargs)

    card.model_card = counting
    try:
        assert cli_main(["sft", SFT, *FAST_SFT, f"output_dir={out}"]) == 0
    finally:
        card.model_card = original
    return out, writes


def _loss_steps(out: Path) -> list[int]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["step"] for r in rows if "loss" in r]


@pytest.mark.slow
def test_sft_model_card_is_written_once_at_the_end(sft_run):
    out, writes = sft_run
    assert writes == ["SFT", "SFT"]  # output_dir and final/, not once per checkpoint
    for card in (out / "README.md", out / "final" / "README.md"):
        text = card.read_text()
        assert "proguard (SFT on TRL)" in text and "[None]" not in text and "max_steps: 2" in text


@pytest.mark.slow
def test_sft_resume_keeps_each_metrics_step_once(sft_run, tmp_path, capsys):
    """A run killed after logging step 2 but before its checkpoint: --resume trains step 2 again, logged once."""
    src, _ = sft_run
    out = tmp_path / "run"
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("final", "README.md"))
    shutil.rmtree(out / "checkpoint-2")
    assert _loss_steps(out) == [1, 2]
    assert cli_main(["sft", SFT, *FAST_SFT, f"output_dir={out}", "--resume"]) == 0
    assert _loss_steps(out) == [1, 2]
    assert "resuming from checkpoint-1" in capsys.readouterr().out


@pytest.mark.slow
def test_sft_checkpoint_cut_short_is_never_named_like_a_whole_one(tmp_path, monkeypatch):
    """A save killed after the weights but before the optimizer leaves no checkpoint-1, only staging scratch."""
    from transformers import Trainer

    def killed(self, output_dir):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", killed)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        cli_main(["sft", SFT, *FAST_SFT, f"output_dir={out}"])
    assert not (out / "checkpoint-1").exists()
    assert (out / ".partial-checkpoint-1" / "checkpoint-1" / "model.safetensors").is_file()
    monkeypatch.undo()
    from proguard.train.runner import prepare_output_dir

    assert prepare_output_dir(out, resume=False) is None  # the scratch is removed, nothing to resume
    assert not (out / ".partial-checkpoint-1").exists()
