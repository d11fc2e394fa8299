"""Real-data learning experiment: random init -> SFT (template critiques / label-only) -> GRPO, benched on held-out data.

Data (read in place from the reference directory, never copied): Do-Not-Answer questions with the
models' responses and their human ``harmful`` labels, and XSTest prompts (safe ones that look unsafe,
and their unsafe contrasts). The taxonomy is Do-Not-Answer's own hierarchy: 5 risk areas
(categories) x 12 harm types (subcategories), each harm type's synonyms its specific-harm names.
One harm type is held out of every prompt: its samples are the OOD split.

Splits are made per Do-Not-Answer *question* (each question appears once per model response): all
rows of a question go to train or to eval, never both. XSTest prompts are split per prompt.
XSTest's unsafe contrast prompts carry no harm type; they are mapped to one by their prompt type
(``XSTEST_CATEGORY`` below: a judgement call, stated here).

Stages, each benched on eval_id + eval_ood with ``proguard bench``'s runner:
(a) SFT on template-teacher critiques; (b) SFT label-only (answer block only; benched with
``require_think=False``); (c) GRPO from (a); (d) GRPO from the random init. Plus the random init
itself as the floor. The model is the in-process tiny Qwen2.5-VL (random, 2 layers): CPU-sized.

    python benchmarks/learning_real_data.py --out runs/learning    # about 15 minutes on 2 cores

Writes ``<out>/results.json``, ``<out>/table.md`` and ``<out>/plots/*.png``. Sizes are options.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE = ROOT.parent / "shared" / "reference"
RESPONDERS = ("GPT4", "ChatGPT", "Claude", "ChatGLM2", "llama2-7b-chat", "vicuna-7b")
XSTEST_CATEGORY = {
    "contrast_discr": "Social stereotypes and unfair discrimination",
    "contrast_privacy": "Compromise privacy by leaking or inferring private information (person/individual)",
    "contrast_homonyms": "Assisting illegal activities",
    "contrast_figurative_language": "Assisting illegal activities",
    "contrast_safe_targets": "Assisting illegal activities",
    "contrast_safe_contexts": "Assisting illegal activities",
    "contrast_definitions": "Assisting illegal activities",
    "contrast_historical_events": "Assisting illegal activities",
}
HOLDOUT_NAME = "Treat Chatbot as a Human"


def build_taxonomy(prompts_csv: Path, out: Path) -> Path:
    """Do-Not-Answer's hierarchy as a taxonomy YAML in the project's own schema (written under ``out``)."""
    import yaml

    tree: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with prompts_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            harms = tree[row["risk_area"]][row["types_of_harm"]]
            if row["specific_harm_name"] not in harms:
                harms.append(row["specific_harm_name"])
    cats = []
    for area, types in tree.items():
        subs = [{"name": t, "description": f"{t}: " + "; ".join(h[:4]) + ".", "synonyms": h[:5]} for t, h in types.items()]
        cats.append({"name": area, "description": f"{area}.", "synonyms": list(types)[:5], "subcategories": subs})
    path = out / "dna_taxonomy.yaml"
    path.write_text(yaml.safe_dump({"name": "do-not-answer", "categories": cats}, sort_keys=False), encoding="utf-8")
    return path


def build_samples(args, out: Path) -> tuple[Path, Path]:
    """Train and eval samples files, split by Do-Not-Answer question and by XSTest prompt."""
    rng = random.Random(args.seed)
    with (REFERENCE / "donotanswer" / "do_not_answer_full_with_responses.csv").open(newline="", encoding="utf-8") as fh:
        dna = list(csv.DictReader(fh))
    with (REFERENCE / "xstest" / "xstest_prompts.csv").open(newline="", encoding="utf-8") as fh:
        xs = list(csv.DictReader(fh))
    held = [q for q in dna if q["types_of_harm"] == HOLDOUT_NAME]
    rest = [q for q in dna if q["types_of_harm"] != HOLDOUT_NAME]
    rng.shuffle(held)
    rng.shuffle(rest)
    n_train, n_eval = args.train_questions, args.eval_questions
    # Held-out questions go to eval_ood whichever file they are in (the generator keeps them out of train);
    # each file needs some, since a build with a holdout and no sample under it is an error.
    half = args.ood_questions // 2
    groups = {"train": rest[:n_train] + held[:half], "eval": rest[n_train : n_train + n_eval] + held[half : args.ood_questions]}

    def dna_rows(q) -> list[dict]:
        rows = []
        for model in rng.sample(RESPONDERS, args.responses_per_question):
            text = " ".join(q[f"{model}_response"].split())[: args.response_chars]
            rows.append({
                "id": f"dna-{q['id']}-{model}", "modality": "text", "request": q["question"], "response": text,
                "request_label": "unsafe", "response_label": "unsafe" if q[f"{model}_harmful"] == "1" else "safe",
                "category": q["types_of_harm"],
            })
        return rows

    rng.shuffle(xs)
    xs_split = {"train": xs[: args.xstest_train], "eval": xs[args.xstest_train : args.xstest_train + args.xstest_eval]}
    paths = []
    for split in ("train", "eval"):
        rows = [r for q in groups[split] for r in dna_rows(q)]
        for p in xs_split[split]:
            unsafe = p["label"] == "unsafe"
            rows.append({"id": f"xstest-{p['id']}", "modality": "text", "request": p["prompt"],
                         "request_label": p["label"], **({"category": XSTEST_CATEGORY[p["type"]]} if unsafe else {})})
        path = out / f"{split}_samples.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def build_task_splits(train_path: Path, eval_path: Path, taxonomy_path: Path, out: Path, seed: int):
    """train / eval_id / eval_ood; the held-out harm type is hidden from every prompt."""
    import datasets

    from proguard.data import load_samples
    from proguard.protocol import PromptConfig
    from proguard.tasks.config import TaskConfig
    from proguard.tasks.generator import build_tasks
    from taxonomy import load_taxonomy

    tax = load_taxonomy(taxonomy_path)
    holdout = [n.id for n in tax.nodes() if n.name == HOLDOUT_NAME]
    prompt = PromptConfig(descriptions=False, examples=False)
    cfg = TaskConfig(holdout=holdout, shuffle_ids=True, eval_fraction=0.0, seed=seed, prompt=prompt)
    train = build_tasks(load_samples(train_path, tax), tax, cfg)
    held = build_tasks(load_samples(eval_path, tax), tax, cfg)  # its "train" split: eval questions, base holdout only
    tasks = datasets.DatasetDict({
        "train": train["train"],
        "eval_id": held["train"],
        "eval_ood": datasets.concatenate_datasets([train["eval_ood"], held["eval_ood"]]),
    })
    tasks.save_to_disk(str(out / "tasks"))
    return tasks, tax, holdout


def bench(model_dir: str, tasks, tax, out: Path, *, require_think: bool, max_new_tokens: int, gpu: bool = False) -> dict:
    """Bench one stage on eval_id + eval_ood (greedy)."""
    import datasets

    from proguard.bench.backends import GenerationSettings, TransformersBackend
    from proguard.bench.runner import BenchConfig, run_bench

    both = datasets.concatenate_datasets([tasks["eval_id"], tasks["eval_ood"]])
    backend = TransformersBackend(model_dir, GenerationSettings(max_new_tokens=max_new_tokens),
                                  device="cuda" if gpu else "cpu", dtype="bfloat16" if gpu else "float32")
    cfg = BenchConfig(batch_size=16, require_think=require_think, plots=False, progress=False)
    m = run_bench(both, backend, out, cfg, taxonomy=tax, tasks_label="eval_id+eval_ood").metrics
    return {
        "request_f1": m["binary"]["request"].get("all", {}).get("f1"),
        "response_f1": m["binary"]["response"].get("all", {}).get("f1"),
        "category_exact": m["category"]["exact"],
        "category_parent": m["category"]["parent"],
        "ood_detection_f1": m["ood_detection"]["f1"],
        "ood_description_sim": m["ood_description"]["mean_similarity"],
        "format_valid": m["format"]["valid_rate"],
        "n": m["n"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/learning")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-questions", type=int, default=40)
    p.add_argument("--eval-questions", type=int, default=10)
    p.add_argument("--ood-questions", type=int, default=8)
    p.add_argument("--responses-per-question", type=int, default=2)
    p.add_argument("--response-chars", type=int, default=240)
    p.add_argument("--xstest-train", type=int, default=40)
    p.add_argument("--xstest-eval", type=int, default=12)
    p.add_argument("--sft-steps", type=int, default=40)
    p.add_argument("--grpo-steps", type=int, default=4)
    p.add_argument("--sft-lr", type=float, default=2e-3, help="SFT learning rate (2e-3 for the random tiny model)")
    p.add_argument("--grpo-lr", type=float, default=1e-4, help="GRPO learning rate (1e-4 for the random tiny model)")
    p.add_argument("--completion-tokens", type=int, default=96)
    p.add_argument("--model", default="tiny",
                   help="base policy: tiny (random, CPU) or a checkpoint, e.g. Qwen/Qwen2.5-VL-3B-Instruct (then (d) is "
                   "GRPO from the instruct base, ProGuard's path, and random_init is that base)")
    p.add_argument("--gpu", action="store_true", help="bf16 training and CUDA benchmarking")
    args = p.parse_args()
    if not (REFERENCE / "donotanswer").is_dir():
        print(f"reference data not found at {REFERENCE}", file=sys.stderr)
        return 2

    from proguard.distill.runner import DistillConfig, run_distill
    from proguard.distill.teachers import TemplateTeacher
    from proguard.train.recipe import load_recipe
    from proguard.train.run import train
    from proguard.train.sft import train_sft
    from proguard.train.sft_recipe import load_sft_recipe

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[learning] {name}: {timings[name]} s", flush=True)

    s = time.perf_counter()
    taxonomy_path = build_taxonomy(REFERENCE / "donotanswer" / "do_not_answer_prompts.csv", out / "data")
    train_path, eval_path = build_samples(args, out / "data")
    tasks, tax, holdout = build_task_splits(train_path, eval_path, taxonomy_path, out, args.seed)
    sizes = {k: len(v) for k, v in tasks.items()}
    print(f"[learning] tasks {sizes}, holdout {holdout} ({HOLDOUT_NAME})", flush=True)
    dist = run_distill(tasks["train"], TemplateTeacher(description_words=0), out / "distill", tax,
                       config=DistillConfig(progress=False), tasks_label="train")
    lap("data + distill", s)

    dtype = "bfloat16" if args.gpu else "float32"
    bf16 = str(args.gpu).lower()
    common_sft = [
        f"model.name_or_path={args.model}", f"model.dtype={dtype}", f"sft.bf16={bf16}", f"data.dataset={out / 'distill'}",
        "lengths.max_length=1024", "lengths.overlong=drop", "sft.per_device_train_batch_size=4",
        f"sft.learning_rate={args.sft_lr}", "sft.lr_scheduler_type=constant", f"sft.max_steps={args.sft_steps}",
        "sft.gradient_checkpointing=false", "sft.seed=0", "logging.report_to=[none]", "logging.logging_steps=5",
        f"checkpoint.save_steps={args.sft_steps}", "checkpoint.save_total_limit=1",
    ]
    common_grpo = [
        f"data.prepared={out / 'tasks'}", f"model.dtype={dtype}", f"grpo.bf16={bf16}", "rewards=default", "lengths.max_prompt_length=1024",
        f"lengths.max_completion_length={args.completion_tokens}", "grpo.per_device_train_batch_size=8",
        "grpo.num_generations=4", f"grpo.learning_rate={args.grpo_lr}", "grpo.beta=0.0", f"grpo.max_steps={args.grpo_steps}",
        "grpo.gradient_checkpointing=false", "grpo.seed=0", "logging.report_to=[none]", "logging.logging_steps=1",
        f"checkpoint.save_steps={args.grpo_steps}", "checkpoint.save_total_limit=1",
    ]
    stages = {}
    finals = {}
    for name, extra in (("a_sft_critique", []), ("b_sft_label_only", ["data.label_only=true"])):
        s = time.perf_counter()
        finals[name] = str(train_sft(load_sft_recipe(None, [*common_sft, *extra, f"output_dir={out / name}"])))
        lap(name, s)
    for name, init in (("c_grpo_from_a", finals["a_sft_critique"]), ("d_grpo_from_random", args.model)):
        s = time.perf_counter()
        finals[name] = str(train(load_recipe(None, [*common_grpo, f"model.name_or_path={init}", f"output_dir={out / name}"])))
        lap(name, s)
    from proguard.train.policy import resolve_model_path

    finals = {"random_init": resolve_model_path(load_recipe(None, [f"model.name_or_path={args.model}"])), **finals}
    for name, model_dir in finals.items():
        s = time.perf_counter()
        stages[name] = bench(model_dir, tasks, tax, out / "bench" / name, require_think=name != "b_sft_label_only",
                             max_new_tokens=args.completion_tokens, gpu=args.gpu)
        lap(f"bench {name}", s)
    grpo_curves = {}
    for name in ("c_grpo_from_a", "d_grpo_from_random"):
        rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        grpo_curves[name] = [r for r in rows if "reward" in r]
    results = {
        "sizes": sizes, "holdout": {"ids": holdout, "name": HOLDOUT_NAME}, "distill": dist.summary["reasons"] or "all kept",
        "distill_kept": dist.kept, "stages": stages, "timings_s": timings,
        "total_s": round(time.perf_counter() - t0, 1), "args": vars(args),
        "grpo_first_last": {k: {"first": _pick(v[0]), "last": _pick(v[-1])} for k, v in grpo_curves.items() if v},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = _table(stages)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    _plots(out, stages, grpo_curves)
    print(table)
    print(json.dumps({"total_s": results["total_s"], "grpo_first_last": results["grpo_first_last"]}, indent=2))
    return 0


def _pick(row: dict) -> dict:
    keys = ("reward", "format/valid_rate", "reward/binary/mean", "reward/category/mean", "reward/ood_similarity/mean")
    return {k: row.get(k) for k in keys}


def _table(stages: dict) -> str:
    cols = ("request_f1", "response_f1", "category_exact", "ood_detection_f1", "ood_description_sim", "format_valid")
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    lines = ["| stage | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
    lines += [f"| {name} | " + " | ".join(fmt(m[c]) for c in cols) + " |" for name, m in stages.items()]
    return "\n".join(lines)


def _plots(out: Path, stages: dict, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in curves.items():
        for key in ("reward", "format/valid_rate", "reward/binary/mean", "reward/category/mean"):
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot([r["step"] for r in rows], ys, marker="o", label=f"{name} {key}")
    ax.set_xlabel("GRPO step")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "plots" / "grpo_rewards.png", dpi=100)
    fig, ax = plt.subplots(figsize=(8, 4))
    cols = ("request_f1", "category_exact", "ood_detection_f1", "format_valid")
    for j, c in enumerate(cols):
        ax.bar([i + 0.2 * j for i in range(len(stages))], [stages[s][c] or 0 for s in stages], width=0.2, label=c)
    ax.set_xticks([i + 0.3 for i in range(len(stages))], list(stages), fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "plots" / "stages.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())
