"""The quick start: SFT then GRPO of the pretrained SmolLM2-135M policy on a small real-data task, and a before/after
table on held-out prompts it never trained on (base vs SFT vs GRPO).

``run_quickstart`` builds the task (``proguard.train.quickstart_data``: Do-Not-Answer + XSTest from a data
root, split by question, one harm type held out; else the bundled samples), distils template-teacher
critiques of the training split, trains ``recipes/smollm2-135m/sft.yaml`` on them, trains
``recipes/smollm2-135m/grpo.yaml`` from the SFT's ``final/``, then benchmarks the base model, the SFT and
the GRPO model on the held-out splits with ``proguard bench``'s runner (greedy). The final (GRPO) model is then
scored once more with the safe/unsafe threshold fitted on the ``dev`` split (56 more prompts it never trained on;
``proguard.bench.label_bias``), which is saved beside its weights (``threshold_models``, CLI
``--no-dev-threshold`` to skip; see ``THRESHOLD_MODELS``). It prints stage banners,
one line per logged training step and the table; the library's own progress printers and repeated
warnings are silenced for the run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.train.errors import TrainError
from proguard.train.quickstart_data import Sizes, quickstart_data

SFT_RECIPE = "recipes/smollm2-135m/sft.yaml"
GRPO_RECIPE = "recipes/smollm2-135m/grpo.yaml"
OUT_DIR = "runs/quickstart"
REWARD_KEY = "reward"
FORMAT_KEY = "format/valid_rate"
STAGES = 3
MODELS = ("base", "sft", "grpo")
DEV_ROW = "{model}, dev threshold"
"""The row of a trained model whose safe/unsafe threshold was fitted on the ``dev`` split (``fit_dev_threshold``)."""
THRESHOLD_MODELS: tuple[str, ...] = ("grpo",)
"""The models that get a dev-threshold row (the final guard; ``proguard quickstart --no-dev-threshold``: none). On
since 2026-12-04. History: it lifted round 4's guard (all weights trained, its own threshold misplaced); with the
lower layers frozen it did not carry over (held-out accuracy -0.172 and -0.016, round 6, 64 prompts), so it was
turned off. With the decision token weighted 5 (the SFT recipe since 2026-12-04) the label margins rank the prompts
better (AUC 0.804 -> 0.867) and the dev-fitted bias turns that into balanced accuracy: on ~390 held-out prompts,
paired on the same prompts, the final guard's balanced accuracy pooled over 3 seeds 0.721 -> 0.787 (+0.066 [+0.039,
+0.093]; +0.203 in the seed whose own threshold was misplaced, -0.012 [-0.051, +0.024] at worst; BENCHMARKS.md,
"Quick start: the dev threshold"). Its cost: a lowered threshold can call an out-of-taxonomy prompt safe."""
ANCHOR_ROW = "grpo, bias anchored to SFT"
"""The GRPO model's row with its label bias moved back onto the SFT model's on the dev prompts (``anchor_bias``,
CLI ``--anchor-bias``). Off by default, for now: in BENCHMARKS.md ("GRPO run longer") GRPO from the full SFT moved
every prompt's label margin by nearly the same amount and ranked them slightly better (AUC +0.016 [+0.003,
+0.031], five runs); moved back, held-out accuracy was +0.028 [+0.003, +0.060] over the SFT's (label probe, not
yet the quick start's own 4-step GRPO)."""
BASELINE = "always unsafe"
"""The table's first row: a constant guard that calls every prompt unsafe (first listed category). Request F1
alone rewards it (most held-out prompts are unsafe), so a trained model's gain is read against this row, and
``safe kept safe`` and ``balanced acc`` (the mean of unsafe and safe recall: 0.5 for this row, whatever the label
mix) show whether a model tells the two apart at all."""
COLUMNS = (  # (key in the bench row, table header)
    ("request_f1", "request F1"),
    ("request_acc", "request acc"),
    ("safe_kept", "safe kept safe"),
    ("balanced_acc", "balanced acc"),
    ("category_acc", "category acc"),
    ("ood_f1", "OOD detect F1"),
    ("format_valid", "format-valid"),
)


@dataclass
class QuickstartResult:
    """Where the runs wrote and what the held-out benchmark shows per model."""

    out: Path
    source: str
    sft_final: Path
    grpo_final: Path
    scores: dict[str, dict[str, Any]]
    eval_sizes: dict[str, int]
    seconds: float
    grpo_steps: list[dict[str, Any]] = field(default_factory=list)
    taxonomy: str = "default"

    def table(self) -> str:
        """The before/after table (markdown)."""
        head = "| model | " + " | ".join(h for _, h in COLUMNS) + " |"
        lines = [head, "|" + " --- |" * (len(COLUMNS) + 1)]
        for name, row in self.scores.items():  # in the order they were scored: baseline, base, sft(+dev), grpo(+dev)
            cells = [_fmt(row.get(k)) for k, _ in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def closing(self) -> str:
        """The line that says what was shown and where the model is."""
        n = ", ".join(f"{k} {v}" for k, v in self.eval_sizes.items())
        return (f"Shown: SmolLM2-135M before and after SFT and GRPO, scored on held-out prompts it never trained on "
                f"({n}; {self.seconds / 60:.1f} min). The trained guard is {self.grpo_final}{self._bias_note()} "
                f"(try: proguard moderate "
                f"--model {self.grpo_final} --taxonomy {self.taxonomy} --request \"...\"); all outputs are under "
                f"{self.out}.")


    def _bias_note(self) -> str:
        from proguard.bench.label_bias import LABEL_BIAS_FILE

        if (self.grpo_final / LABEL_BIAS_FILE).is_file():
            return f", with its label bias in {LABEL_BIAS_FILE} (moderate and bench apply it)"
        return ""


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def policy_overrides(taxonomy_path: str | Path) -> list[str]:
    """GRPO overrides naming the task's taxonomy: the OOD reward scores a free-text answer against the policy
    the tasks were built from, and the recipe's ``default`` is not it (the real-data task has its own 5 areas)."""
    return [f"data.taxonomy={taxonomy_path}", f"rewards.ood_description.options.taxonomy={taxonomy_path}"]


def drop_checkpoints(stage_dir: Path) -> None:
    """Remove the ``checkpoint-N`` folders this quick start's stage just wrote (``final/`` stays).

    A checkpoint holds the optimizer state (1.6 GB for SmolLM2-135M) for ``--resume``; the quick start is rerun,
    never resumed, and its ``--out`` was new or empty when it began, so these folders are its own."""
    import shutil

    for ckpt in sorted(stage_dir.glob("checkpoint-*")):
        if ckpt.is_dir() and (ckpt / "trainer_state.json").is_file():
            shutil.rmtree(ckpt)


def metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl``."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def step_printer(stage: str, max_steps: int, echo: Callable[[str], None], grpo: bool):
    """A ``TrainerCallback`` printing one line per logged step (in place of transformers' dict printer)."""
    from transformers import TrainerCallback

    class StepLine(TrainerCallback):
        """``stage step i/n  key value ...  (seconds)`` per log record; the closing summary record is skipped."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "train_runtime" in logs:
                return
            if grpo:
                parts = [f"reward {logs.get(REWARD_KEY, 0.0):.3f}", f"(std {logs.get('reward_std', 0.0):.3f})",
                         f"format-valid {logs.get(FORMAT_KEY, 0.0):.2f}",
                         f"length {logs.get('completions/mean_length', 0.0):.0f} tok"]
            else:
                parts = [f"loss {logs.get('loss', float('nan')):.3f}"]
                if "mean_token_accuracy" in logs:
                    parts.append(f"token acc {logs['mean_token_accuracy']:.3f}")
            echo(f"  {stage} step {state.global_step:>3}/{max_steps}  " + "  ".join(parts)
                 + f"  ({time.perf_counter() - self.t0:.0f} s)")

    return StepLine()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library warnings once at most, transformers/datasets progress bars and info logs off, for the quick start."""
    import datasets
    import transformers

    tf_level = transformers.logging.get_verbosity()
    with warnings.catch_warnings():
        warnings.simplefilter("once")
        # deprecation notices that TRL's own calls into transformers trigger: nothing a quick-start user can change
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # "Loading weights" bars, once per model load
        datasets.disable_progress_bars()
        try:
            yield
        finally:
            transformers.logging.set_verbosity(tf_level)
            transformers.logging.enable_progress_bar()
            datasets.enable_progress_bars()


class AlwaysUnsafe:
    """The constant baseline as a bench backend: every prompt unsafe, first listed category (no model)."""

    def __init__(self) -> None:
        from proguard.bench.backends import GenerationSettings

        self.settings = GenerationSettings(max_new_tokens=1)

    def describe(self) -> dict[str, Any]:
        return {"backend": "constant", "answer": "unsafe, first listed category"}

    def generate(self, batch) -> list[str]:
        import re

        from proguard.protocol import format_answer

        out = []
        for messages, _ in batch:
            content = messages[0]["content"]
            system = content if isinstance(content, str) else "".join(p.get("text") or "" for p in content)
            first = re.search(r"^(C\d+(?:S\d+)?):", system, re.M)
            out.append(format_answer("text", "unsafe", None, first.group(1) if first else "C1", "constant baseline"))
        return out


def _key(messages) -> str:
    return json.dumps(messages, sort_keys=True, default=str)


class _Wrapped:
    """A bench backend passing everything but ``generate`` to the model's transformers backend."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.settings = inner.settings

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def prepare(self) -> None:
        self.inner.prepare()

    def tokenizer(self):
        return self.inner.tokenizer()


class RecordedAnswers(_Wrapped):
    """A bench backend that keeps each answer by prompt: the greedy row's answers, reused by the dev-threshold row."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.answers: dict[str, Any] = {}

    def generate(self, batch) -> list:
        out = self.inner.generate(batch)
        self.answers.update((_key(messages), a) for (messages, _), a in zip(batch, out, strict=True))
        return out


class ThresholdShifted(_Wrapped):
    """The dev-threshold row's backend. A prompt whose decision the bias leaves as it was gets its greedy answer:
    the tokens are the same (nothing differs before the decision point, the same label wins there, and the model
    goes on from the same text). The others are generated again with the bias (1-18 of the 34 held-out prompts
    in BENCHMARKS.md's round 4), which keeps the extra row within the quick start's time budget."""

    def __init__(self, inner, greedy: dict[str, Any], bias: float) -> None:
        super().__init__(inner)
        self.greedy = greedy
        inner.label_bias = bias
        self.regenerated = 0

    def generate(self, batch) -> list:
        bias = self.inner.label_bias
        # the model's own margins, measured again: the greedy row's generation passed the same decision points,
        # but recording them there would put per-prompt state into the backend's generate for ~15 s per run
        margins = self.inner.decision_margins(batch)
        out = [self.greedy.get(_key(messages)) for messages, _ in batch]
        redo = [i for i, m in enumerate(margins)
                if out[i] is None or (m is not None and (m > 0) != (m + bias > 0))]
        if redo:
            for i, a in zip(redo, self.inner.generate([batch[i] for i in redo]), strict=True):
                out[i] = a
        self.regenerated += len(redo)
        return out


def bench_row(model: str | Any, tasks, taxonomy, out: Path, max_new_tokens: int, batch_size: int = 8) -> dict[str, Any]:
    """Greedy held-out scores of one model (a folder, or a bench backend): request F1 and accuracy, the share of
    safe prompts called safe, category accuracy (in-taxonomy unsafe), OOD detection F1."""
    from proguard.bench.backends import GenerationSettings, TransformersBackend
    from proguard.bench.runner import BenchConfig, run_bench

    backend = model if not isinstance(model, str) else TransformersBackend(
        model, GenerationSettings(max_new_tokens=max_new_tokens), device="cpu", dtype="float32")
    cfg = BenchConfig(batch_size=batch_size, plots=False, progress=False)
    m = run_bench(tasks, backend, out, cfg, taxonomy=taxonomy, tasks_label="eval_id+eval_ood").metrics
    request = m["binary"]["request"].get("all", {})
    safe = request.get("tn", 0) + request.get("fp", 0)  # held-out safe prompts with a scored answer
    return {
        "request_f1": request.get("f1"),
        "request_acc": request.get("accuracy"),
        "safe_kept": request["tn"] / safe if safe else None,
        "balanced_acc": request.get("balanced_accuracy"),  # 0.5 for the constant guard, whatever the label mix
        "category_acc": m["category"]["exact"],
        "ood_f1": m["ood_detection"]["f1"],
        "ood_description": m["ood_description"]["mean_similarity"],
        "format_valid": m["format"]["valid_rate"],
        "n": m["n"],
    }


def dev_margins(backend, dev) -> list[float | None]:
    """A model's decision margin on each ``dev`` prompt (``None``: no label within the answer budget)."""
    from proguard.bench.backends import media_of

    prompts = [(r["prompt"], media_of(r)) for r in dev]
    margins: list[float | None] = []
    for i in range(0, len(prompts), 16):
        margins += backend.decision_margins(prompts[i : i + 16])
    return margins


def labelled_dev_margins(backend, dev) -> list[tuple[str, float | None]]:
    """(request label, decision margin) of each ``dev`` prompt: what both the dev threshold and the anchored bias fit."""
    rows = list(dev)
    return [(r["request_label"], m) for r, m in zip(rows, dev_margins(backend, rows), strict=True)]


def anchor_to_sft(sft_margins: list[float | None], backend, dev, echo: Callable[[str], None]):
    """The GRPO model's label bias that moves its dev margins back onto the SFT model's (``anchor_label_bias``), or
    ``None`` with a line saying why."""
    from proguard.bench.errors import BenchError
    from proguard.bench.label_bias import anchor_label_bias

    labelled = labelled_dev_margins(backend, dev)
    try:
        fit = anchor_label_bias(sft_margins, labelled,
                                fitted_on=f"the SFT model's margins on the quick start's dev split ({len(labelled)} prompts)")
    except BenchError as exc:
        echo(f"  grpo  no anchored bias: {exc}")
        return None
    echo(f"  grpo  bias anchored to the SFT model on dev: {fit.bias:+.2f} (dev balanced acc "
         f"{fit.balanced_accuracy_unbiased:.3f} -> {fit.balanced_accuracy:.3f}; labels not used)")
    return fit


def fit_dev_threshold(backend, dev, echo: Callable[[str], None], name: str, split: str = "the quick start's dev split"):
    """The decision threshold of a trained model fitted on the ``dev`` split (``proguard.bench.label_bias``), or
    ``None`` with a line saying why (e.g. a model that never states a label within the answer budget). ``split``
    names the dev prompts in the fit's ``fitted_on`` (``benchmarks/learning_real_data.py`` fits on its own)."""
    from proguard.bench.errors import BenchError
    from proguard.bench.label_bias import fit_label_bias

    labelled = labelled_dev_margins(backend, dev)
    try:
        fit = fit_label_bias(labelled, fitted_on=f"{split} ({len(labelled)} prompts, never trained on)")
    except BenchError as exc:
        echo(f"  {name:<4}  no dev threshold: {exc}")
        return None
    echo(f"  {name:<4}  dev threshold: label bias {fit.bias:+.2f} (dev balanced acc {fit.balanced_accuracy_unbiased:.3f} "
         f"-> {fit.balanced_accuracy:.3f}; {fit.n_unsafe} unsafe, {fit.n_safe} safe, {fit.undecided} undecided)")
    return fit


def run_quickstart(
    sft_recipe: str | Path = SFT_RECIPE,
    grpo_recipe: str | Path = GRPO_RECIPE,
    *,
    out: str | Path = OUT_DIR,
    data_root: str | Path | None = None,
    seed: int = 0,
    sizes: Sizes | None = None,
    sft_overrides: list[str] | None = None,
    grpo_overrides: list[str] | None = None,
    max_new_tokens: int | None = None,
    threshold_models: tuple[str, ...] | None = None,
    anchor_bias: bool = False,
    echo: Callable[[str], None] = functools.partial(print, flush=True),
) -> QuickstartResult:
    """Data, SFT, GRPO from the SFT's ``final/``, and the held-out table (base, SFT, GRPO).

    ``max_new_tokens`` (default: the GRPO recipe's ``lengths.max_completion_length``) bounds each held-out
    answer: a shorter cap than training's cut the free-text answers of OOD prompts mid-field (format-invalid).

    ``threshold_models`` (of ``sft``, ``grpo``; default ``THRESHOLD_MODELS``, or none with ``anchor_bias``) get a
    second row with the safe/unsafe threshold fitted on the ``dev`` split, which is saved beside their weights
    (``label_bias.json``). ``anchor_bias`` gives the GRPO model a row with its label bias moved back onto the SFT
    model's on the dev prompts (``anchor_to_sft``; labels not used), saved the same way; it and a GRPO dev
    threshold exclude each other.

    ``echo`` flushes each line by default: piped into a file or ``tee``, print() would hold every progress line
    until the 15-minute run ends (seen on a fresh clone with ``> log``)."""
    import datasets

    from proguard.bench.backends import GenerationSettings, TransformersBackend
    from proguard.distill.runner import DistillConfig, run_distill
    from proguard.distill.teachers import TemplateTeacher
    from proguard.train.policy import resolve_model_path
    from proguard.train.recipe import load_recipe, load_sft_recipe
    from proguard.train.run import train
    from proguard.train.runner import METRICS_FILE
    from proguard.train.sft import train_sft

    t0 = time.perf_counter()
    out = Path(out)
    for path in (sft_recipe, grpo_recipe):
        if not Path(path).is_file():
            raise TrainError(f"{path}: no such recipe; run from the project checkout or pass --sft-recipe/--grpo-recipe")
    if threshold_models is None:  # both would write the GRPO model's label_bias.json: the anchor, when asked for
        threshold_models = () if anchor_bias else THRESHOLD_MODELS
    if anchor_bias and "grpo" in threshold_models:
        raise TrainError("--anchor-bias and --dev-threshold both set the GRPO model's label_bias.json: pass one")
    if out.exists() and any(out.iterdir()):
        raise TrainError(f"--out {out}: holds an earlier run; pass --out NEW_DIR (or delete {out})")
    data_dir = out / "data"
    common_sft = [f"sft.seed={seed}", f"output_dir={out / 'sft'}", "data.distill=null",
                  f"data.dataset={data_dir / 'distill'}"]
    common_grpo = [f"grpo.seed={seed}", f"output_dir={out / 'grpo'}", f"data.prepared={data_dir / 'tasks'}"]
    # both recipes are checked before anything runs (the SFT's final/ is filled in after stage 1)
    sft = load_sft_recipe(sft_recipe, [*common_sft, *(sft_overrides or [])])
    load_recipe(grpo_recipe, [*common_grpo, *(grpo_overrides or [])])

    with quiet_libraries():
        echo(f"[quickstart] data: building the held-out task under {data_dir} ...")
        data = quickstart_data(data_dir, data_root, seed, sizes)
        echo(f"[quickstart] data: {data.source}")
        sizes_now = {k: len(v) for k, v in data.tasks.items()}
        dev_note = "" if "dev" not in data.tasks else "; dev only sets the final model's safe/unsafe threshold" \
            if threshold_models or anchor_bias else "; dev is not used with --no-dev-threshold"
        echo("[quickstart] tasks: " + ", ".join(f"{k} {v}" for k, v in sizes_now.items())
             + f" (eval_id and eval_ood are never trained on{dev_note})")
        run_distill(data.tasks["train"], TemplateTeacher(description_words=0), data_dir / "distill", data.taxonomy,
                    config=DistillConfig(progress=False), tasks_label="train")
        base = resolve_model_path(sft)  # type: ignore[arg-type]  # converts the wheel once (~40 s) if needed
        echo(f"[quickstart] base model: {sft.model.name_or_path} ({base})")

        echo(f"\n== stage 1/{STAGES}: SFT on template-teacher critiques of the {sizes_now['train']} training prompts "
             f"({sft.sft.max_steps} steps) ==")
        sft_final = train_sft(sft, progress=step_printer("SFT", sft.sft.max_steps, echo, grpo=False))
        drop_checkpoints(Path(sft.output_dir))
        echo(f"[quickstart] SFT model: {sft_final}")

        grpo = load_recipe(grpo_recipe, [*common_grpo, *policy_overrides(data.taxonomy_path), *(grpo_overrides or []),
                                         f"model.name_or_path={sft_final}"])
        echo(f"\n== stage 2/{STAGES}: GRPO from the SFT model ({grpo.grpo.max_steps} steps, "
             f"{grpo.grpo.num_generations} rollouts per prompt, the default reward) ==")
        grpo_final = train(grpo, progress=step_printer("GRPO", grpo.grpo.max_steps, echo, grpo=True))
        drop_checkpoints(Path(grpo.output_dir))
        echo(f"[quickstart] GRPO model: {grpo_final}")

        if max_new_tokens is None:
            max_new_tokens = grpo.lengths.max_completion_length
        held = datasets.concatenate_datasets([data.tasks["eval_id"], data.tasks["eval_ood"]])
        eval_sizes = {"eval_id": len(data.tasks["eval_id"]), "eval_ood": len(data.tasks["eval_ood"])}
        echo(f"\n== stage 3/{STAGES}: held-out evaluation of base, SFT and GRPO on {len(held)} prompts "
             f"(greedy, up to {max_new_tokens} new tokens) ==")
        scores: dict[str, dict[str, Any]] = {
            BASELINE: bench_row(AlwaysUnsafe(), held, data.taxonomy, out / "eval" / "always-unsafe", max_new_tokens)}
        echo(f"  {BASELINE}: request F1 {_fmt(scores[BASELINE]['request_f1'])} (the bar a model must pass)")
        sft_dev: list[float | None] = []
        for name, model_dir in zip(MODELS, (base, str(sft_final), str(grpo_final)), strict=True):
            s = time.perf_counter()
            # the model's own threshold first; the base model chats ("I'm sorry, ..."): its answers stop at the
            # first word that no answer can start with (same scores; 87 s -> ~10 s of the 15-minute budget)
            backend = TransformersBackend(model_dir, GenerationSettings(max_new_tokens=max_new_tokens), device="cpu",
                                          dtype="float32", label_bias=0.0, stop_malformed=name == "base")
            greedy = RecordedAnswers(backend)
            scores[name] = bench_row(greedy, held, data.taxonomy, out / "eval" / name, max_new_tokens)
            echo(f"  {name:<4}  request F1 {_fmt(scores[name]['request_f1'])}  safe kept safe "
                 f"{_fmt(scores[name]['safe_kept'])}  format-valid "
                 f"{_fmt(scores[name]['format_valid'])}  ({time.perf_counter() - s:.0f} s)")
            if anchor_bias and "dev" in data.tasks and name == "sft":
                sft_dev = dev_margins(backend, data.tasks["dev"])  # what the GRPO model's bias is anchored to
            if anchor_bias and "dev" in data.tasks and name == "grpo":
                s = time.perf_counter()
                fit = anchor_to_sft(sft_dev, backend, data.tasks["dev"], echo)
                if fit is not None:
                    shifted = ThresholdShifted(backend, greedy.answers, fit.bias)
                    scores[ANCHOR_ROW] = bench_row(shifted, held, data.taxonomy, out / "eval" / "grpo-anchored",
                                                   max_new_tokens, batch_size=len(held))
                    fit.save(model_dir)  # moderate and bench apply it from now on
                    echo(f"  grpo  with it: request F1 {_fmt(scores[ANCHOR_ROW]['request_f1'])}  safe kept safe "
                         f"{_fmt(scores[ANCHOR_ROW]['safe_kept'])}  ({shifted.regenerated} of {len(held)} answers "
                         f"changed decision and were generated again; {time.perf_counter() - s:.0f} s)")
                continue
            if name not in threshold_models or "dev" not in data.tasks:
                continue
            s = time.perf_counter()
            fit = fit_dev_threshold(backend, data.tasks["dev"], echo, name)
            if fit is None:
                continue
            row = DEV_ROW.format(model=name)
            shifted = ThresholdShifted(backend, greedy.answers, fit.bias)
            # one batch: the flipped answers are then generated together (as many decoding steps as one batch of
            # the greedy row) instead of a few per batch of 8 (as many steps as the whole greedy row)
            scores[row] = bench_row(shifted, held, data.taxonomy, out / "eval" / f"{name}-dev-threshold",
                                    max_new_tokens, batch_size=len(held))
            fit.save(model_dir)  # moderate and bench apply it from now on
            echo(f"  {name:<4}  with it: request F1 {_fmt(scores[row]['request_f1'])}  safe kept safe "
                 f"{_fmt(scores[row]['safe_kept'])}  format-valid {_fmt(scores[row]['format_valid'])}  "
                 f"({shifted.regenerated} of {len(held)} answers changed decision and were generated again; "
                 f"{time.perf_counter() - s:.0f} s)")
    steps = [r for r in metrics(Path(grpo.output_dir) / METRICS_FILE) if REWARD_KEY in r and FORMAT_KEY in r]
    result = QuickstartResult(out, data.source, Path(sft_final), Path(grpo_final), scores, eval_sizes,
                              time.perf_counter() - t0, steps, str(data.taxonomy_path))
    (out / "quickstart.json").write_text(json.dumps({
        "source": data.source, "scores": scores, "eval_sizes": eval_sizes, "seconds": round(result.seconds, 1),
        "seed": seed, "sft_final": str(sft_final), "grpo_final": str(grpo_final)}, indent=2) + "\n", encoding="utf-8")
    return result
