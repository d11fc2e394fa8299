"""The quick start's parts without training: its real-data task (split by question, one risk area held out), the
fallback to the bundled samples, the one-line-per-step printer, the table; and what a new user meets after it
(bench scoring only the modalities a model takes, on eval splits; demo's canned answer; --help)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from proguard.train import quickstart_data as qd
from proguard.train.errors import TrainError

AREAS = ("Malicious Uses", "Information Hazards", "Misinformation Harms", "Human-Chatbot Interaction Harms",
         "Discrimination, Exclusion, Toxicity, Hateful, Offensive")


def _data_root(tmp_path: Path, per_area: int = 30, safe: int = 110) -> Path:
    """Do-Not-Answer and XSTest files in their released columns (made-up rows)."""
    root = tmp_path / "reference"
    (root / "donotanswer").mkdir(parents=True)
    (root / "xstest").mkdir()
    with (root / qd.DNA_FILE).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "risk_area", "types_of_harm", "specific_harm_name", "specific_harm_description", "question"])
        n = 0
        for a, area in enumerate(AREAS):
            for i in range(per_area):
                w.writerow([n, area, f"harm {a}-{i % 2}", "h", "d", f"area {a} question {i}?"])
                n += 1
    with (root / qd.XSTEST_FILE).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt", "type", "label", "focus", "note"])
        for i in range(safe):
            w.writerow([i + 1, f"safe prompt {i}?", "homonyms", "safe", "f", "n"])
        for i in range(5):
            w.writerow([safe + i + 1, f"unsafe contrast {i}?", "contrast_homonyms", "unsafe", "f", "n"])
    return root


def test_real_data_task_is_split_by_question_with_one_area_held_out(tmp_path):
    data = qd.quickstart_data(tmp_path / "out", _data_root(tmp_path), seed=3)
    tasks = data.tasks
    sizes = qd.Sizes()
    assert len(tasks["train"]) == 4 * sizes.train_per_area + sizes.train_safe
    assert len(tasks["eval_id"]) == 4 * sizes.eval_per_area + sizes.eval_safe
    assert len(tasks["eval_ood"]) == sizes.eval_ood and all(tasks["eval_ood"]["ood"])
    # the fixture's 30 questions per area and 110 safe prompts leave 4 and 14 for dev after train and eval, fewer
    # than dev asks for: dev takes what is left (never a training or evaluation prompt)
    left = min(sizes.dev_per_area, 30 - sizes.train_per_area - sizes.eval_per_area)
    assert len(tasks["dev"]) == 4 * left + min(sizes.dev_safe, 110 - sizes.train_safe - sizes.eval_safe) == 30
    assert not any(tasks["dev"]["ood"])
    for split in ("train", "eval_id", "eval_ood", "dev"):  # a bench report names each row's split by its task ID
        assert {t.split("/")[0] for t in tasks[split]["task_id"]} == {split}

    def requests(split):
        return {m[1]["content"][0]["text"] for m in tasks[split]["prompt"]}

    assert not requests("train") & (requests("eval_id") | requests("eval_ood"))  # no held-out prompt trained on
    assert not requests("dev") & (requests("train") | requests("eval_id") | requests("eval_ood"))
    assert tasks["dev"][0]["prompt"][0] == tasks["eval_id"][0]["prompt"][0]  # the same policy prompt as eval
    assert all("area 1 question" in t for t in requests("eval_ood"))  # Information Hazards, AREAS[1]
    assert not any("area 1 question" in t for t in requests("train") | requests("eval_id"))
    system = tasks["train"][0]["prompt"][0]["content"][0]["text"]
    assert "Information Hazards" not in system and "Malicious Uses" in system
    assert "XSTest's 5 unsafe contrasts carry no harm type and are not used" in data.source
    assert (tmp_path / "out" / "tasks" / "dataset_dict.json").is_file()


def test_the_split_changes_with_the_seed_and_repeats_with_it(tmp_path):
    root = _data_root(tmp_path)

    def train_requests(seed, name):
        t = qd.quickstart_data(tmp_path / name, root, seed=seed).tasks["train"]
        return sorted(m[1]["content"][0]["text"] for m in t["prompt"])

    assert train_requests(0, "a") == train_requests(0, "b") != train_requests(1, "c")


def test_an_explicit_data_root_without_the_files_names_them(tmp_path):
    with pytest.raises(TrainError, match=r"--data-root .*: missing .*do_not_answer_prompts.csv"):
        qd.resolve_data_root(tmp_path)


def test_without_a_data_root_the_bundled_samples_are_used_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr(qd, "DEFAULT_DATA_ROOT", tmp_path / "absent")
    assert qd.resolve_data_root(None) is None
    data = qd.quickstart_data(tmp_path / "out", None, seed=0)
    assert "bundled samples" in data.source and "--data-root" in data.source
    assert set(data.tasks["train"]["modality"]) == {"text"} and len(data.tasks["eval_ood"]) >= 1


def test_one_line_per_training_step():
    from proguard.train.quickstart import step_printer

    lines: list[str] = []
    cb = step_printer("GRPO", 4, lines.append, grpo=True)
    state = SimpleNamespace(is_world_process_zero=True, global_step=2)
    cb.on_train_begin(None, state, None)
    cb.on_log(None, state, None, logs={"reward": 0.5, "reward_std": 0.1, "format/valid_rate": 0.75,
                                       "completions/mean_length": 40.0, **{f"k{i}": i for i in range(40)}})
    cb.on_log(None, state, None, logs={"train_runtime": 12.0, "train_loss": 0.1})  # the closing record: no line
    assert len(lines) == 1
    assert lines[0].startswith("  GRPO step   2/4  reward 0.500  (std 0.100)  format-valid 0.75  length 40 tok")
    assert "k39" not in lines[0]


def test_table_and_closing_line(tmp_path):
    from proguard.train.quickstart import QuickstartResult

    row = {"request_f1": 0.5, "request_acc": 0.6, "safe_kept": 0.75, "balanced_acc": 0.55, "category_acc": None,
           "ood_f1": 0.25, "format_valid": 1.0}
    r = QuickstartResult(tmp_path, "src", tmp_path / "sft", tmp_path / "grpo" / "final",
                         {"always unsafe": row, "base": row, "sft": row, "grpo": row}, {"eval_id": 28, "eval_ood": 6},
                         600.0)
    table = r.table().splitlines()
    assert table[0] == ("| model | request F1 | request acc | safe kept safe | balanced acc | category acc | "
                        "OOD detect F1 | format-valid |")
    assert table[2] == "| always unsafe | 0.500 | 0.600 | 0.750 | 0.550 | - | 0.250 | 1.000 |"
    assert table[3].startswith("| base |") and len(table) == 6
    closing = r.closing()
    assert str(tmp_path / "grpo" / "final") in closing and "eval_id 28, eval_ood 6" in closing and "10.0 min" in closing


def test_the_always_unsafe_row_scores_the_held_out_split_as_a_constant_guard(tmp_path):
    """The baseline row goes through the bench scoring: every unsafe prompt caught, no safe prompt kept safe."""
    from proguard.train.quickstart import AlwaysUnsafe, bench_row

    data = qd.quickstart_data(tmp_path / "out", _data_root(tmp_path), seed=0)
    held = data.tasks["eval_id"]
    row = bench_row(AlwaysUnsafe(), held, data.taxonomy, tmp_path / "eval", 8)
    unsafe = sum(1 for x in held if x["request_label"] == "unsafe")
    assert row["safe_kept"] == 0.0 and row["format_valid"] == 1.0
    assert row["request_acc"] == pytest.approx(unsafe / len(held))
    assert row["request_f1"] == pytest.approx(2 * unsafe / (2 * unsafe + len(held) - unsafe))
    assert 0.0 < row["category_acc"] < 1.0  # C1 is right for one shown area's prompts only
    assert row["balanced_acc"] == 0.5  # all unsafe caught, no safe prompt kept: whatever the label mix


def test_balanced_accuracy_averages_unsafe_and_safe_recall(tmp_path):
    """A guard that keeps every other safe prompt safe and catches every unsafe one: (1 + kept share) / 2."""
    from proguard.protocol import format_answer
    from proguard.train.quickstart import AlwaysUnsafe, bench_row

    class EveryOtherSafe(AlwaysUnsafe):
        def generate(self, batch):
            out = super().generate(batch)
            for i, (messages, _) in enumerate(batch):
                number = re.search(r"safe prompt (\d+)\?", json.dumps(messages))
                if number and int(number.group(1)) % 2 == 0:
                    out[i] = format_answer("text", "safe", None, None, "kept safe")
            return out

    data = qd.quickstart_data(tmp_path / "out", _data_root(tmp_path), seed=0)
    held = data.tasks["eval_id"]
    row = bench_row(EveryOtherSafe(), held, data.taxonomy, tmp_path / "eval", 8)
    assert 0.0 < row["safe_kept"] < 1.0
    assert row["balanced_acc"] == pytest.approx((1.0 + row["safe_kept"]) / 2)


def test_quickstart_refuses_an_earlier_runs_folder(tmp_path):
    from proguard.train.quickstart import run_quickstart

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "quickstart.json").write_text("{}")
    root = Path(__file__).resolve().parents[1]
    with pytest.raises(TrainError, match="holds an earlier run"):
        run_quickstart(root / "recipes/smollm2-135m/sft.yaml", root / "recipes/smollm2-135m/grpo.yaml",
                       out=tmp_path / "old")


# ---------------------------------------------------------------------------------------------
# After the quick start: bench, demo, --help
# ---------------------------------------------------------------------------------------------
def _tasks(modalities):
    import datasets

    return datasets.Dataset.from_dict({"modality": list(modalities), "x": list(range(len(modalities)))})


def test_bench_scores_only_the_modalities_a_text_only_model_takes(tmp_path, capsys):
    from transformers import LlamaConfig

    from proguard.commands.bench import _only_model_modalities, model_modalities

    folder = tmp_path / "llama"
    LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, vocab_size=64).save_pretrained(folder)
    assert model_modalities(str(folder)) == ("text",)
    kept, label = _only_model_modalities(_tasks(["text", "image", "audio", "text"]), "L",
                                         SimpleNamespace(model_path=str(folder)))
    assert kept["modality"] == ["text", "text"] and label == "L (skipped, not scored: audio 1, image 1)"
    assert "skipping 2 of 4 tasks the model cannot take (audio 1, image 1); it takes text" in capsys.readouterr().err


def test_bench_scores_a_vision_language_model_on_its_image_rows_and_skips_audio():
    from proguard.commands.bench import _only_model_modalities, model_modalities
    from proguard.models.tiny_vlm import tiny_vlm_path

    takes = model_modalities(str(tiny_vlm_path()))
    assert {"text", "image", "text_image"} <= set(takes) and "audio" not in takes
    kept, _ = _only_model_modalities(_tasks(["text", "image", "text_image", "audio"]), "L",
                                     SimpleNamespace(model_path=str(tiny_vlm_path())))
    assert kept["modality"] == ["text", "image", "text_image"]
    served, label = _only_model_modalities(_tasks(["text", "image", "video"]), "L", SimpleNamespace(base_url="http://x"))
    assert served["modality"] == ["text", "image"]  # the openai and vllm backends take no video or audio
    assert label == "L (skipped, not scored: video 1)"


def test_demo_says_its_answer_is_canned(capsys):
    from proguard.cli import main

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "===== answer (canned: written from the sample's own labels, no model ran" in out


def test_help_points_at_the_quick_start(capsys):
    from proguard.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Start with `proguard quickstart`" in " ".join(capsys.readouterr().out.split())


def test_some_training_prompts_hide_their_own_area_and_no_eval_prompt_does(tmp_path):
    """OOD training tasks (own area hidden, answer in words) exist only in train; 0.0 turns them off."""
    root = _data_root(tmp_path)
    tasks = qd.quickstart_data(tmp_path / "on", root, seed=0).tasks
    ood_train = [t for t in tasks["train"] if t["ood"]]
    assert 0 < len(ood_train) < len([t for t in tasks["train"] if t["request_label"] == "unsafe"])
    assert not any(tasks["eval_id"]["ood"])
    for t in ood_train:  # the own area is missing from that prompt's list, another shown area is there
        system = t["prompt"][0]["content"][0]["text"]
        assert t["category_name"] not in system and "Human-Chatbot Interaction Harms" in system or \
            t["category_name"] == "Human-Chatbot Interaction Harms" and "Malicious Uses" in system
    off = qd.quickstart_data(tmp_path / "off", root, seed=0, sizes=qd.Sizes(own_hide_prob=0.0)).tasks
    assert not any(off["train"]["ood"])


def test_drop_checkpoints_removes_only_the_stages_checkpoint_folders(tmp_path):
    from proguard.train.quickstart import drop_checkpoints

    (tmp_path / "checkpoint-24").mkdir()
    (tmp_path / "checkpoint-24" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-notes").mkdir()  # not a trainer checkpoint: kept
    (tmp_path / "final").mkdir()
    drop_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-notes", "final"]


def test_grpo_scores_ood_answers_against_the_quick_start_tasks_taxonomy(tmp_path):
    """The GRPO recipe, with the quick start's overrides, names the task's taxonomy for the OOD reward."""
    from proguard.train.quickstart import GRPO_RECIPE, policy_overrides
    from proguard.train.recipe import load_recipe

    data = qd.quickstart_data(tmp_path / "out", _data_root(tmp_path), seed=0)
    root = Path(__file__).resolve().parents[1]
    r = load_recipe(root / GRPO_RECIPE, [f"data.prepared={tmp_path / 'out' / 'tasks'}",
                                         *policy_overrides(data.taxonomy_path)])
    ood = [s for s in r.reward_specs() if s.name == "ood_description"]
    assert ood and ood[0].options["taxonomy"] == str(data.taxonomy_path)
    assert r.data.taxonomy == str(data.taxonomy_path)


def test_held_out_answers_get_the_grpo_recipes_completion_budget(tmp_path, monkeypatch):
    """The eval cap is the GRPO recipe's lengths.max_completion_length: a shorter one (64 against 96) cut the
    free-text answers of OOD prompts mid-field and scored them format-invalid."""
    import proguard.train.policy as policy
    import proguard.train.quickstart as qs
    from proguard.bench.label_bias import LabelBias, load_label_bias
    import proguard.train.run as grpo_run
    import proguard.train.sft as sft

    real, data_root = qd.quickstart_data, _data_root(tmp_path)
    monkeypatch.setattr(qs, "quickstart_data", lambda out, root, seed, sizes: real(out, data_root, seed))
    monkeypatch.setattr(policy, "resolve_model_path", lambda r: "base-model")
    monkeypatch.setattr(sft, "train_sft", lambda r, progress: tmp_path / "sft" / "final")
    monkeypatch.setattr(grpo_run, "train", lambda r, progress: tmp_path / "grpo" / "final")
    for stage in ("sft", "grpo"):
        (tmp_path / stage / "final").mkdir(parents=True)
    fitted = []

    def fit_dev_threshold(backend, dev, echo, name):
        fitted.append((name, len(dev), backend.label_bias))
        return LabelBias(bias=0.5, n_safe=1, n_unsafe=1, undecided=0, balanced_accuracy=1.0,
                            balanced_accuracy_unbiased=0.5)

    monkeypatch.setattr(qs, "fit_dev_threshold", fit_dev_threshold)
    caps = {}

    stops = {}

    def bench_row(model, tasks, taxonomy, out, max_new_tokens, batch_size=8):
        caps[out.name] = max_new_tokens
        stops[out.name] = getattr(getattr(model, "inner", None), "stop_malformed", None)
        return {k: 0.5 for k, _ in qs.COLUMNS}

    monkeypatch.setattr(qs, "bench_row", bench_row)
    root = Path(__file__).resolve().parents[1]
    lines = []
    qs.run_quickstart(root / qs.SFT_RECIPE, root / qs.GRPO_RECIPE, out=tmp_path / "qs0", threshold_models=(),
                      echo=lines.append)
    assert fitted == [] and "grpo-dev-threshold" not in caps  # --no-dev-threshold: no dev threshold
    assert load_label_bias(tmp_path / "grpo" / "final") is None
    assert any("dev is not used with --no-dev-threshold" in line for line in lines)
    caps.clear(), stops.clear()
    # the default: the final model's dev threshold
    qs.run_quickstart(root / qs.SFT_RECIPE, root / qs.GRPO_RECIPE, out=tmp_path / "qs",
                      grpo_overrides=["lengths.max_completion_length=80"], echo=lines.append)
    assert caps == {"always-unsafe": 80, "base": 80, "sft": 80, "grpo": 80, "grpo-dev-threshold": 80}
    # only the chatting base model's answers stop at their first malformed word
    assert stops == {"always-unsafe": None, "base": True, "sft": False, "grpo": False, "grpo-dev-threshold": False}
    # the final model gets a threshold from the dev split, fitted with its own (bias 0), saved beside it
    assert fitted == [("grpo", 30, 0.0)]  # the fixture's dev split (see the first test)
    assert load_label_bias(tmp_path / "grpo" / "final").bias == 0.5
    assert load_label_bias(tmp_path / "sft" / "final") is None
    assert any("up to 80 new tokens" in line for line in lines)
    qs.run_quickstart(root / qs.SFT_RECIPE, root / qs.GRPO_RECIPE, out=tmp_path / "qs2", max_new_tokens=12,
                      threshold_models=("sft", "grpo"), echo=lines.append)
    assert set(caps.values()) == {12} and "sft-dev-threshold" in caps
    assert [name for name, _, _ in fitted[1:]] == ["sft", "grpo"]


def test_anchor_bias_scores_the_grpo_model_with_its_margins_moved_back_onto_the_sfts(tmp_path, monkeypatch):
    """``anchor_bias``: the SFT's and the GRPO model's dev margins (one call each), the GRPO row once more with the
    bias that closes the gap between their means, saved beside the GRPO weights; refused with a GRPO dev threshold."""
    import proguard.train.policy as policy
    import proguard.train.quickstart as qs
    import proguard.train.run as grpo_run
    import proguard.train.sft as sft
    from proguard.bench.label_bias import load_label_bias

    real, data_root = qd.quickstart_data, _data_root(tmp_path)
    monkeypatch.setattr(qs, "quickstart_data", lambda out, root, seed, sizes: real(out, data_root, seed))
    monkeypatch.setattr(policy, "resolve_model_path", lambda r: "base-model")
    monkeypatch.setattr(sft, "train_sft", lambda r, progress: tmp_path / "sft" / "final")
    monkeypatch.setattr(grpo_run, "train", lambda r, progress: tmp_path / "grpo" / "final")
    for stage in ("sft", "grpo"):
        (tmp_path / stage / "final").mkdir(parents=True)
    asked = []

    def dev_margins(backend, dev):
        stage = Path(backend.model_path).parent.name
        asked.append((stage, len(dev)))
        return [{"sft": 0.5, "grpo": -1.0}[stage]] * len(dev)  # GRPO moved every dev margin by -1.5

    monkeypatch.setattr(qs, "dev_margins", dev_margins)
    scored = []

    def bench_row(model, tasks, taxonomy, out, max_new_tokens, batch_size=8):
        scored.append((out.name, getattr(getattr(model, "inner", None), "label_bias", None)))
        return {k: 0.5 for k, _ in qs.COLUMNS}

    monkeypatch.setattr(qs, "bench_row", bench_row)
    root = Path(__file__).resolve().parents[1]
    lines = []
    result = qs.run_quickstart(root / qs.SFT_RECIPE, root / qs.GRPO_RECIPE, out=tmp_path / "qs", anchor_bias=True,
                               echo=lines.append)
    assert asked == [("sft", 30), ("grpo", 30)]  # the fixture's dev split
    assert scored[-1] == ("grpo-anchored", pytest.approx(1.5)) and qs.ANCHOR_ROW in result.scores
    assert [name for name, _ in scored[:-1]] == ["always-unsafe", "base", "sft", "grpo"]
    assert load_label_bias(tmp_path / "grpo" / "final").bias == pytest.approx(1.5)
    assert load_label_bias(tmp_path / "sft" / "final") is None
    assert any("bias anchored to the SFT model on dev: +1.50" in line for line in lines)
    assert "with its label bias in label_bias.json" in result.closing()
    with pytest.raises(TrainError, match="--anchor-bias and --dev-threshold"):
        qs.run_quickstart(root / qs.SFT_RECIPE, root / qs.GRPO_RECIPE, out=tmp_path / "qs2", anchor_bias=True,
                          threshold_models=("grpo",))


def test_the_dev_threshold_row_regenerates_only_the_answers_whose_decision_flips():
    """Margins +1.0 and -2.0 keep their label under bias +1.5, -1.0 flips to unsafe, an undecided prompt keeps its
    answer: one prompt is generated again, with the bias set; the rest are the greedy row's answers."""
    from proguard.train.quickstart import RecordedAnswers, ThresholdShifted

    class Inner:
        settings = None
        label_bias = 0.0

        def __init__(self):
            self.calls = []

        def describe(self):
            return {"label_bias": self.label_bias}

        def decision_margins(self, batch):
            return [{"a": 1.0, "b": -1.0, "c": -2.0, "d": None}[m[0]["content"]] for m, _ in batch]

        def generate(self, batch):
            self.calls.append(([m[0]["content"] for m, _ in batch], self.label_bias))
            return [f"{m[0]['content']}@{self.label_bias}" for m, _ in batch]

    batch = [([{"role": "user", "content": c}], None) for c in "abcd"]
    inner = Inner()
    greedy = RecordedAnswers(inner)
    assert greedy.generate(batch) == ["a@0.0", "b@0.0", "c@0.0", "d@0.0"]
    shifted = ThresholdShifted(inner, greedy.answers, 1.5)
    assert shifted.generate(batch) == ["a@0.0", "b@1.5", "c@0.0", "d@0.0"]
    assert inner.calls[-1] == (["b"], 1.5) and shifted.regenerated == 1
    assert shifted.describe() == {"label_bias": 1.5}  # its own generation-cache key


@pytest.mark.parametrize(("argv", "thresholds", "anchor"), [
    ([], None, False), (["--dev-threshold"], ("grpo",), False), (["--no-dev-threshold"], (), False),
    (["--anchor-bias"], None, True), (["--anchor-bias", "--dev-threshold"], ("grpo",), True)])
def test_the_dev_threshold_flags_reach_run_quickstart(monkeypatch, tmp_path, argv, thresholds, anchor):
    """Neither flag: run_quickstart's default (None: the final model's dev threshold, none with ``anchor_bias``;
    tested above); both: run_quickstart's one-line error (tested above)."""
    import proguard.train.quickstart as qs
    from proguard.cli import main

    seen = {}

    class Stop(Exception):
        pass

    def run_quickstart(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(qs, "run_quickstart", run_quickstart)
    with pytest.raises(Stop):
        main(["quickstart", "--out", str(tmp_path / "qs"), *argv])
    assert seen["threshold_models"] == thresholds
    assert seen["anchor_bias"] is anchor


def test_the_dev_threshold_is_fitted_on_each_dev_prompts_label_and_margin():
    """``fit_dev_threshold`` pairs every dev row's request label with the model's margin on that row's prompt (in
    batches of 16): the fitted bias separates the labels that the unbiased margins mix up; a split with one label
    gives a line and no fit."""
    from proguard.train.quickstart import fit_dev_threshold

    margins = {f"u{i}": m for i, m in enumerate([2.0, 1.0, -0.5] * 6)} | {f"s{i}": m for i, m in enumerate([-2.0, -1.5] * 6)}

    class Backend:
        batches = []

        def decision_margins(self, prompts):
            self.batches.append(len(prompts))
            return [margins[text] for text, _ in prompts]

    dev = [{"prompt": k, "request_label": "unsafe" if k[0] == "u" else "safe"} for k in margins]
    lines = []
    fit = fit_dev_threshold(Backend(), iter(dev), lines.append, "grpo")
    assert Backend.batches == [16, 14]
    assert (fit.n_unsafe, fit.n_safe, fit.undecided) == (18, 12, 0)
    assert fit.balanced_accuracy == 1.0 > fit.balanced_accuracy_unbiased
    assert lines and lines[0].startswith("  grpo  dev threshold: label bias")
    assert fit_dev_threshold(Backend(), [r for r in dev if r["request_label"] == "unsafe"], lines.append, "sft") is None
    assert "sft   no dev threshold: fitting a label bias needs decided dev prompts of both labels" in lines[-1]
