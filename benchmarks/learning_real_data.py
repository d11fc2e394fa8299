"""Real-data learning experiment: base policy -> SFT (template critiques / label-only) -> GRPO, benched on held-out data.

Data (read in place from the reference directory, never copied): Do-Not-Answer questions with the
models' responses and their human ``harmful`` labels, and XSTest prompts (safe ones that look unsafe,
and their unsafe contrasts). The taxonomy is Do-Not-Answer's own hierarchy: 5 risk areas
(categories) x 12 harm types (subcategories), each harm type's synonyms its specific-harm names;
``--short-names`` (the default) shows each node under a short name of a few words (the original name
stays its first synonym), which keeps the prompt CPU-sized. One harm type (*Treat Chatbot as a
Human*) is held out of every prompt: its samples are the OOD split.

Splits are made per Do-Not-Answer *question* (each question appears once per model response): all
rows of a question go to train or to eval, never both, and the bootstrap intervals resample whole
questions. XSTest prompts are split per prompt. Each question contributes ``--responses-per-question``
responses, a harmful one first where the question has one (harmful responses are 3% of the data; this
keeps response F1 measurable), the rest drawn at random. XSTest's unsafe contrast prompts carry no harm
type; they are mapped to one by their prompt type (``XSTEST_CATEGORY``: a judgement call, stated here).
Training tasks hide the sample's own harm type with probability ``--own-hide``, so SFT and GRPO see
rows whose right answer is a free-text name (the OOD skill); evaluation tasks hide only the held-out type.

Stages, each benched greedily on eval_id and eval_ood with ``proguard bench``'s runner (one
generation pass over both; metrics per split):
``base`` the policy zero-shot; (a) SFT on template-teacher critiques; (b) SFT label-only (answer block
only; benched with ``require_think=False``); (c) GRPO from (a); (d) GRPO from the base. Two rule
baselines go through the same scoring: ``majority`` (train's commonest request / response label and
harm type) and ``keyword`` (a fixed harm-word list for the request, a refusal-phrase check for the
response, the harm type sharing most words with the request). Every metric has a 95% percentile
bootstrap interval over question groups (``proguard.bench.bootstrap``), and (c) - (a) a paired one. With
``--dev-questions N --xstest-dev M`` a dev split (drawn after train's and eval's, which stay as they were) fits
each trained model's safe/unsafe threshold (``proguard.bench.label_bias``, as the quick start's final guard) and
each gets a second row benched with it; eval_id also reports the request balanced accuracy (0.5 for a constant
guard whatever the label mix).

    python benchmarks/learning_real_data.py --model smollm2-135m --out runs/learning-smollm2   # over 1 h, 1 thread
    python benchmarks/learning_real_data.py --model tiny --out runs/learning-tiny               # the random tiny VLM

``--stages`` picks stages (base,a,b,c,d; c trains a first unless --reuse finds it) and ``--reuse`` takes the
tasks, the distilled data and every stage an earlier run recorded in ``<out>/trained.json``, so stages can
run in separate processes; a last run over all stages only reads cached answers and writes the tables.
BENCHMARKS.md gives the sizes that were actually run (smaller than the defaults) and why.

Writes ``<out>/results.json``, ``<out>/table.md`` and ``<out>/plots/*.png`` (GRPO reward curves). Sizes are options.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REFERENCE = Path(os.environ.get("PROGUARD_REFERENCE_DIR") or ROOT.parent / "shared" / "reference")
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
SHORT_NAMES = {  # Do-Not-Answer name -> a few words shown in the prompt (the full name stays a synonym)
    "Discrimination, Exclusion, Toxicity, Hateful, Offensive": "Discrimination and toxicity",
    "Human-Chatbot Interaction Harms": "Human-chatbot interaction harms",
    "Information Hazards": "Information hazards",
    "Malicious Uses": "Malicious uses",
    "Misinformation Harms": "Misinformation harms",
    "Adult Content": "Adult content",
    "Social stereotypes and unfair discrimination": "Stereotypes and discrimination",
    "Toxic language (hate speech)": "Toxic language",
    "Mental Health or Overreliance Crisis": "Mental health crisis",
    "Treat Chatbot as a Human": "Treat chatbot as a human",
    "Compromise privacy by leaking or inferring private information (person/individual)": "Private information of a person",
    "Risks from leaking or inferring sensitive information (organization/gov)": "Sensitive organisation information",
    "Assisting illegal activities": "Illegal activities",
    "Nudging or advising users to perform unethical or unsafe actions": "Unethical or unsafe actions",
    "Reducing the cost of disinformation campaigns": "Disinformation campaigns",
    "Causing material harm by disseminating misinformation e.g. in medicine or law": "Harmful medical or legal misinformation",
    "Disseminating false or misleading information": "False or misleading information",
}
STAGE_TITLES = {
    "majority": "baseline: majority class",
    "keyword": "baseline: keywords",
    "base": "base model, zero-shot",
    "a_sft_critique": "(a) SFT, template critiques",
    "b_sft_label_only": "(b) SFT, label-only",
    "c_grpo_from_a": "(c) GRPO from (a)",
    "d_grpo_from_base": "(d) GRPO from the base",
}
DEV_SUFFIX = "_dev"  # a stage benched again with its safe/unsafe threshold fitted on the dev split


def title(name: str) -> str:
    """A stage's (or baseline's) row title; ``<stage>_dev``: that stage with its dev threshold."""
    if name.endswith(DEV_SUFFIX) and name.removesuffix(DEV_SUFFIX) in STAGE_TITLES:
        return f"{STAGE_TITLES[name.removesuffix(DEV_SUFFIX)]}, dev threshold"
    return STAGE_TITLES.get(name, name)


RULES = ("majority", "keyword")  # the baselines: rule guards scored like the models
SPLITS = ("eval_id", "eval_ood")


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def build_taxonomy(prompts_csv: Path, out: Path, short: bool, flat: bool) -> Path:
    """Do-Not-Answer's hierarchy as a taxonomy YAML in the project's own schema (written under ``out``):
    5 risk areas x 12 harm types, or with ``flat`` the 12 harm types alone as categories."""
    import yaml

    tree: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with prompts_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            harms = tree[row["risk_area"]][row["types_of_harm"]]
            if row["specific_harm_name"] not in harms:
                harms.append(row["specific_harm_name"])

    def name(full: str) -> str:
        return SHORT_NAMES.get(full, full) if short else full

    def synonyms(full: str, extra: list[str]) -> list[str]:
        return list(dict.fromkeys(([full] if name(full) != full else []) + extra))[:5]

    def harm_type(t: str, h: list[str]) -> dict:
        return {"name": name(t), "description": f"{t}: " + "; ".join(h[:4]) + ".", "synonyms": synonyms(t, h)}

    if flat:
        cats = [{**harm_type(t, h), "subcategories": []} for types in tree.values() for t, h in types.items()]
    else:
        cats = [{"name": name(area), "description": f"{area}.", "synonyms": synonyms(area, list(types)),
                 "subcategories": [harm_type(t, h) for t, h in types.items()]} for area, types in tree.items()]
    path = out / "dna_taxonomy.yaml"
    path.write_text(yaml.safe_dump({"name": "do-not-answer", "categories": cats}, sort_keys=False), encoding="utf-8")
    return path


def build_samples(args, out: Path) -> tuple[Path, Path, dict[str, str]]:
    """Train and eval samples files, split by Do-Not-Answer question and by XSTest prompt; and sample ID -> group."""
    rng = random.Random(args.seed)
    with (REFERENCE / "donotanswer" / "do_not_answer_full_with_responses.csv").open(newline="", encoding="utf-8") as fh:
        dna = list(csv.DictReader(fh))
    with (REFERENCE / "xstest" / "xstest_prompts.csv").open(newline="", encoding="utf-8") as fh:
        xs = list(csv.DictReader(fh))
    held = [q for q in dna if q["types_of_harm"] == HOLDOUT_NAME]
    rest = [q for q in dna if q["types_of_harm"] != HOLDOUT_NAME]
    rng.shuffle(held)
    rest = _mix_harmful(rest, args.harmful_share, rng)
    n_train, n_eval = args.train_questions, args.eval_questions
    # Held-out questions go to eval_ood whichever file they are in (the generator keeps them out of
    # train); each file needs some, since a build with a holdout and no sample under it is an error.
    groups = {"train": rest[:n_train] + held[:1], "eval": rest[n_train : n_train + n_eval] + held[1 : 1 + args.ood_questions]}
    name = (lambda full: SHORT_NAMES.get(full, full)) if args.short_names else (lambda full: full)
    group_of: dict[str, str] = {}

    def dna_rows(q) -> list[dict]:
        harmful = [m for m in RESPONDERS if q[f"{m}_harmful"] == "1"]
        first = [rng.choice(harmful)] if harmful else []
        others = [m for m in RESPONDERS if m not in first]
        rows = []
        for model in (first + rng.sample(others, len(others)))[: args.responses_per_question]:
            text = " ".join(q[f"{model}_response"].split())[: args.response_chars]
            sid = f"dna-{q['id']}-{model}"
            group_of[sid] = f"dna-{q['id']}"
            rows.append({
                "id": sid, "group": f"dna-{q['id']}", "modality": "text", "request": q["question"], "response": text,
                "request_label": "unsafe", "response_label": "unsafe" if q[f"{model}_harmful"] == "1" else "safe",
                "category": name(q["types_of_harm"]),
            })
        return rows

    rng.shuffle(xs)
    # eval: --xstest-eval-safe-share of the XSTest prompts are safe ones, which balances the request labels
    # (every Do-Not-Answer request is unsafe) so that always answering "unsafe" is not a strong request F1
    n_safe = round(args.xstest_eval * args.xstest_eval_safe_share)
    safe = [p for p in xs if p["label"] == "safe"][:n_safe]
    unsafe = [p for p in xs if p["label"] == "unsafe"][: args.xstest_eval - n_safe]
    xs_eval = [p for p in xs if p in safe or p in unsafe]
    xs_split = {"train": [p for p in xs if p not in xs_eval][: args.xstest_train], "eval": xs_eval}
    paths = []
    for split in ("train", "eval"):
        rows = [r for q in groups[split] for r in dna_rows(q)]
        for p in xs_split[split]:
            unsafe = p["label"] == "unsafe"
            sid = f"xstest-{p['id']}"
            group_of[sid] = sid
            rows.append({"id": sid, "modality": "text", "request": p["prompt"], "request_label": p["label"],
                         **({"category": name(XSTEST_CATEGORY[p["type"]])} if unsafe else {})})
        path = out / f"{split}_samples.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    if args.dev_questions or args.xstest_dev:
        # drawn after train and eval (their rows and the rng's draws for them are unchanged): the next questions in
        # the same order and the next XSTest prompts after train's, none of them in train or eval
        # (one held-out question too, unused elsewhere: the task generator needs a sample under the holdout; its
        # rows go to the dev build's eval_ood, which is not used)
        start, spare = n_train + n_eval, held[1 + args.ood_questions : 2 + args.ood_questions]
        rows = [r for q in rest[start : start + args.dev_questions] + spare for r in dna_rows(q)]
        for p in [p for p in xs if p not in xs_eval][args.xstest_train : args.xstest_train + args.xstest_dev]:
            sid = f"xstest-{p['id']}"
            rows.append({"id": sid, "modality": "text", "request": p["prompt"], "request_label": p["label"],
                         **({"category": name(XSTEST_CATEGORY[p["type"]])} if p["label"] == "unsafe" else {})})
        (out / "dev_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths[0], paths[1], group_of


def _has_harmful(q: dict) -> bool:
    return any(q[f"{m}_harmful"] == "1" for m in RESPONDERS)


def _mix_harmful(questions: list[dict], share: float, rng: random.Random) -> list[dict]:
    """Shuffled questions, interleaved so that about ``share`` of every prefix has a harmful response."""
    pos = [q for q in questions if _has_harmful(q)]
    neg = [q for q in questions if not _has_harmful(q)]
    rng.shuffle(pos)
    rng.shuffle(neg)
    out, taken = [], 0.0
    while pos or neg:
        taken += share
        if pos and (taken >= 1 or not neg):
            out.append(pos.pop())
            taken -= 1
        else:
            out.append(neg.pop())
    return out


def build_task_splits(train_path: Path, eval_path: Path, taxonomy_path: Path, out: Path, args):
    """train / eval_id / eval_ood; the held-out harm type is hidden from every prompt, and training tasks
    also hide the sample's own harm type with probability ``args.own_hide`` (free-text answers to learn)."""
    import datasets

    from proguard.data import load_samples
    from proguard.protocol import PromptConfig
    from proguard.tasks.config import TaskConfig
    from proguard.tasks.generator import build_tasks
    from taxonomy import load_taxonomy

    tax = load_taxonomy(taxonomy_path)
    holdout = [n.id for n in tax.nodes() if n.name == (SHORT_NAMES[HOLDOUT_NAME] if args.short_names else HOLDOUT_NAME)]
    prompt = PromptConfig(descriptions=False, examples=False)
    eval_cfg = TaskConfig(holdout=holdout, shuffle_ids=True, eval_fraction=0.0, seed=args.seed, prompt=prompt)
    train_cfg = replace(eval_cfg, hide_level="category" if args.flat else "subcategory",
                        own_category_hide_prob=args.own_hide or None)
    train = build_tasks(load_samples(train_path, tax), tax, train_cfg)
    held = build_tasks(load_samples(eval_path, tax), tax, eval_cfg)  # its "train" split: eval questions, holdout only
    tasks = datasets.DatasetDict({
        "train": train["train"],
        "eval_id": held["train"],
        "eval_ood": datasets.concatenate_datasets([train["eval_ood"], held["eval_ood"]]),
    })
    tasks.save_to_disk(str(out / "tasks"))
    return tasks, tax, holdout


def build_dev_tasks(dev_path: Path, tax, holdout: list[str], args):
    """The dev split's tasks, rendered as eval_id's (the held-out harm type hidden, IDs shuffled): the prompts each
    model's safe/unsafe threshold is fitted on (``--dev-questions``, ``--xstest-dev``); never trained on or scored."""
    from proguard.data import load_samples
    from proguard.protocol import PromptConfig
    from proguard.tasks.config import TaskConfig
    from proguard.tasks.generator import build_tasks

    cfg = TaskConfig(holdout=holdout, shuffle_ids=True, eval_fraction=0.0, seed=args.seed + 1,
                     prompt=PromptConfig(descriptions=False, examples=False))
    return build_tasks(load_samples(dev_path, tax), tax, cfg)["train"]  # its eval_ood: the spare held-out question


# ---------------------------------------------------------------------------------------------
# Rule baselines (a Backend: scored by the same runner as the models)
# ---------------------------------------------------------------------------------------------
HARM_WORDS = (
    "kill", "murder", "bomb", "weapon", "gun", "shoot", "stab", "explosive", "poison", "drug", "cocaine", "meth",
    "heroin", "steal", "rob", "hack", "fraud", "scam", "launder", "counterfeit", "smuggle", "kidnap", "torture",
    "attack", "terror", "violence", "abuse", "suicide", "self-harm", "sex", "porn", "nude", "racist", "hate",
    "slur", "insult", "stupid", "idiot", "blackmail", "stalk", "spy", "password", "address", "phone number",
    "social security", "credit card", "secret", "confidential", "illegal", "cheat", "lie", "fake", "threat",
)
REFUSALS = ("i'm sorry", "i am sorry", "i cannot", "i can't", "i can not", "i won't", "as an ai", "i'm not able",
            "i am not able", "i am unable", "i'm unable", "not appropriate", "i apologize", "i do not", "i don't")
_ID_LINE = re.compile(r"^\s*(C\d+(?:S\d+)?): (.+)$")
_WORD = re.compile(r"[a-z]+")


class RuleGuard:
    """A rule baseline as a bench ``Backend``: reads the conversation and the category list from the prompt."""

    def __init__(self, kind: str, request_label: str, response_label: str, category: str, names: Sequence[str]) -> None:
        from proguard.bench.backends import GenerationSettings

        self.kind, self.request_label, self.response_label, self.category = kind, request_label, response_label, category
        self.names = list(names)  # harm-type names (keyword matching)
        self.settings = GenerationSettings(max_new_tokens=1)

    def describe(self) -> dict[str, Any]:
        return {"backend": "rule", "rule": self.kind, "request": self.request_label, "response": self.response_label,
                "category": self.category, "words": list(HARM_WORDS) if self.kind == "keyword" else None}

    def generate(self, batch):
        from proguard.protocol import format_answer

        out = []
        for messages, _ in batch:
            system = "".join(p.get("text", "") for p in messages[0]["content"])
            user = "".join(p.get("text", "") for p in messages[1]["content"])
            listed = {m.group(2).strip(): m.group(1) for m in map(_ID_LINE.match, system.splitlines()) if m}
            request, _, response = user.partition("\nAssistant: ")
            request = request.removeprefix("Conversation:\nUser: ")
            req, resp, cat_name = self._judge(request.lower(), response.lower())
            unsafe = req == "unsafe" or resp == "unsafe"
            cat = listed.get(cat_name) or listed.get(self.category) or next(iter(listed.values()))
            out.append(format_answer("text", req, resp, cat if unsafe else None, f"{self.kind} rule"))
        return out

    def _judge(self, request: str, response: str) -> tuple[str, str, str]:
        if self.kind == "majority":
            return self.request_label, self.response_label, self.category
        req = "unsafe" if any(w in request for w in HARM_WORDS) else "safe"
        refused = any(r in response for r in REFUSALS)
        resp = "unsafe" if req == "unsafe" and response and not refused else "safe"
        words = set(_WORD.findall(request))
        scored = [(len(words & {w for w in _WORD.findall(n.lower()) if len(w) > 3}), n) for n in self.names]
        best = max(scored, key=lambda s: s[0], default=(0, self.category))
        return req, resp, best[1] if best[0] > 0 else self.category


def rule_guards(train, tax) -> dict[str, RuleGuard]:
    """The majority and keyword baselines, fitted (label counts) on the train split only."""
    req = Counter(train["request_label"]).most_common(1)[0][0]
    resp = Counter(x for x in train["response_label"] if x in ("safe", "unsafe")).most_common(1)[0][0]
    cat = Counter(n for n, ood in zip(train["category_name"], train["ood"], strict=True) if n and not ood)
    top = cat.most_common(1)[0][0]
    names = [n.name for n in tax.nodes() if not n.children]
    return {k: RuleGuard(k, req, resp, top, names) for k in ("majority", "keyword")}


# ---------------------------------------------------------------------------------------------
# Metrics with bootstrap intervals
# ---------------------------------------------------------------------------------------------
def metric_functions(threshold: float) -> dict[str, Callable]:
    """Name -> statistic over a list of bench ``Record``s (``None`` where undefined)."""
    from proguard.bench import metrics as M

    def f1(level):
        return lambda rs: M.binary_metrics(rs)[level].get("all", {}).get("f1")

    return {
        "request_f1": f1("request"),
        # the mean of unsafe and safe recall: the constant guard's is 0.5 whatever the label mix
        "request_balanced_acc": lambda rs: M.binary_metrics(rs)["request"].get("all", {}).get("balanced_accuracy"),
        "response_f1": f1("response"),
        "category_exact": lambda rs: M.category_metrics(rs)["exact"],
        "ood_detection_f1": lambda rs: M.ood_detection(rs)["f1"] if any(r.target.unsafe for r in rs) else None,
        "ood_description": lambda rs: M.ood_description(rs, threshold)["mean_score"],
        "ood_similarity": lambda rs: M.ood_description(rs, threshold)["mean_similarity"],
        "format_valid": lambda rs: M.format_metrics(rs)["valid_rate"],
    }


# Which statistic is reported on which rows: OOD detection needs both kinds of unsafe row, so it is
# scored on eval_id + eval_ood; category accuracy exists only in-taxonomy, OOD description only on OOD.
SCOPES = {
    "eval_id": ("request_f1", "request_balanced_acc", "response_f1", "category_exact", "format_valid"),
    "eval_ood": ("request_f1", "response_f1", "ood_description", "ood_similarity", "format_valid"),
    "eval_id+eval_ood": ("ood_detection_f1",),
}


def score_stage(records, split_of: dict[str, str], group_of: dict[str, str], args) -> tuple[dict, dict]:
    """Every reported metric with its interval, per scope; and the sorted records per scope (for pairing)."""
    from proguard.bench.bootstrap import group_bootstrap

    fns = metric_functions(0.7)
    by_scope = {}
    for scope, names in SCOPES.items():
        wanted = scope.split("+")
        rs = sorted((r for r in records if split_of[r.task_id] in wanted), key=lambda r: r.task_id)
        by_scope[scope] = rs
    out = {}
    for scope, names in SCOPES.items():
        rs = by_scope[scope]
        groups = [group_of[r.sample_id] for r in rs]
        ivs = group_bootstrap(rs, groups, {n: fns[n] for n in names}, n_resamples=args.bootstrap, seed=args.seed)
        out[scope] = {n: iv.as_dict() for n, iv in ivs.items()}
        out[scope]["n"] = len(rs)
        out[scope]["groups"] = len(set(groups))
    return out, by_scope


def paired_gains(a: dict, c: dict, group_of: dict[str, str], args) -> dict:
    """(c) - (a) per metric, one group resample applied to both (the rows are the same tasks)."""
    from proguard.bench.bootstrap import paired_difference

    fns = metric_functions(0.7)
    out = {}
    for scope, names in SCOPES.items():
        ra, rc = a[scope], c[scope]
        if [r.task_id for r in ra] != [r.task_id for r in rc]:
            continue
        groups = [group_of[r.sample_id] for r in ra]
        for n in names:
            out[f"{scope}/{n}"] = paired_difference(ra, rc, groups, fns[n], n_resamples=args.bootstrap,
                                                    seed=args.seed).as_dict()
    return out


def bench(backend, tasks, tax, out: Path, *, require_think: bool, batch_size: int):
    """Bench one model (or rule) on eval_id + eval_ood in one pass; the records."""
    import datasets

    from proguard.bench.runner import BenchConfig, run_bench

    both = datasets.concatenate_datasets([tasks["eval_id"], tasks["eval_ood"]])
    cfg = BenchConfig(batch_size=batch_size, require_think=require_think, plots=False, progress=False)
    return run_bench(both, backend, out, cfg, taxonomy=tax, tasks_label="eval_id+eval_ood").records


# ---------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------
MODEL_DEFAULTS = {  # per --model: learning rates fit to each (the random tiny model needs far larger ones)
    "tiny": {"sft_lr": 2e-3, "grpo_lr": 1e-4, "freeze_layers": 0, "decision_token_weight": 1.0},
    # the quick start's recipe: the lower 18 of 30 layers frozen (BENCHMARKS.md, "Quick start, round 5") and the
    # label token weighted 5 in the SFT loss (recipes/smollm2-135m/sft.yaml; "Quick start: the decision token weight")
    "smollm2-135m": {"sft_lr": 1.5e-4, "grpo_lr": 1e-5, "freeze_layers": 18, "decision_token_weight": 5.0},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/learning")
    p.add_argument("--model", default="smollm2-135m",
                   help="base policy: smollm2-135m (pretrained, CPU), tiny (random tiny VLM) or a checkpoint, e.g. "
                        "Qwen/Qwen2.5-VL-3B-Instruct with --gpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-questions", type=int, default=24)
    p.add_argument("--eval-questions", type=int, default=8)
    p.add_argument("--ood-questions", type=int, default=5, help="held-out questions in the eval file (+1 in train's)")
    p.add_argument("--responses-per-question", type=int, default=2)
    p.add_argument("--response-chars", type=int, default=160)
    p.add_argument("--xstest-train", type=int, default=40)
    p.add_argument("--xstest-eval", type=int, default=24)
    p.add_argument("--xstest-eval-safe-share", type=float, default=2 / 3)
    p.add_argument("--dev-questions", type=int, default=0,
                   help="Do-Not-Answer questions of a dev split (drawn after train's and eval's; 0: no dev split): "
                        "each trained model is also scored with its safe/unsafe threshold fitted there, as the quick "
                        "start's final guard is")
    p.add_argument("--xstest-dev", type=int, default=0, help="XSTest prompts of the dev split (after train's)")
    p.add_argument("--bench-batch", type=int, default=26, help="bench generation batch size")
    p.add_argument("--own-hide", type=float, default=0.2,
                   help="training tasks: probability that the sample's own harm type is hidden (a free-text target)")
    p.add_argument("--short-names", action=argparse.BooleanOptionalAction, default=True,
                   help="show short harm-type names in the prompt (the full names stay synonyms)")
    p.add_argument("--flat", action=argparse.BooleanOptionalAction, default=True,
                   help="the 12 harm types as a flat taxonomy (a dozen nodes, a shorter prompt); --no-flat: 5 risk "
                        "areas x 12 harm types")
    p.add_argument("--harmful-share", type=float, default=0.5,
                   help="share of the drawn Do-Not-Answer questions that have a harmful response (harmful responses "
                        "are 3%% of the data; this keeps response F1 measurable)")
    p.add_argument("--sft-steps", type=int, default=12)
    p.add_argument("--sft-batch", type=int, default=4)
    p.add_argument("--grpo-steps", type=int, default=5)
    p.add_argument("--grpo-prompts", type=int, default=2, help="prompts per GRPO step")
    p.add_argument("--num-generations", type=int, default=4)
    p.add_argument("--grpo-temperature", type=float, default=1.0)
    p.add_argument("--grpo-beta", type=float, default=0.01,
                   help="KL coefficient (small: it mainly makes TRL compute and log the KL to the start policy)")
    p.add_argument("--sft-lr", type=float, default=None, help="SFT learning rate (default: per --model)")
    p.add_argument("--grpo-lr", type=float, default=None, help="GRPO learning rate (default: per --model)")
    p.add_argument("--freeze-layers", type=int, default=None,
                   help="model.freeze_layers of every training stage (default: per --model; 18 for smollm2-135m)")
    p.add_argument("--decision-token-weight", type=float, default=None,
                   help="sft.decision_token_weight of both SFT stages: the safe/unsafe label token's weight in the "
                        "token loss (default: per --model; 5 for smollm2-135m, as its quick-start recipe)")
    p.add_argument("--balance-labels", action=argparse.BooleanOptionalAction, default=True,
                   help="data.balance_labels of every training stage (each step sees safe and unsafe rows)")
    p.add_argument("--completion-tokens", type=int, default=64, help="GRPO rollouts and bench answers, in tokens")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--stages", default="base,a,b,c,d", help="comma-separated subset of base,a,b,c,d")
    p.add_argument("--reuse", action="store_true",
                   help="reuse the tasks, distilled data and trained stages an earlier run left in --out (bench answers "
                        "are cached by the runner): run stages in separate processes, then once more for the tables")
    p.add_argument("--gpu", action="store_true", help="bf16 training and CUDA benchmarking")
    args = p.parse_args(argv)
    for flag in ("dev_questions", "xstest_dev"):
        if getattr(args, flag) < 0:
            p.error(f"--{flag.replace('_', '-')}: a count, 0 or more (got {getattr(args, flag)})")
    defaults = MODEL_DEFAULTS.get(args.model, {"sft_lr": 1e-5, "grpo_lr": 1e-6, "freeze_layers": 0,
                                               "decision_token_weight": 1.0})
    args.sft_lr = args.sft_lr if args.sft_lr is not None else defaults["sft_lr"]
    args.grpo_lr = args.grpo_lr if args.grpo_lr is not None else defaults["grpo_lr"]
    args.freeze_layers = args.freeze_layers if args.freeze_layers is not None else defaults["freeze_layers"]
    if args.decision_token_weight is None:
        args.decision_token_weight = defaults["decision_token_weight"]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (REFERENCE / "donotanswer").is_dir():
        print(f"reference data not found at {REFERENCE} (Do-Not-Answer and XSTest, see its README)", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from proguard.bench.backends import GenerationSettings, TransformersBackend
    from proguard.distill.runner import DistillConfig, run_distill
    from proguard.distill.teachers import TemplateTeacher
    from proguard.train.policy import resolve_model_path
    from proguard.train.recipe import load_recipe
    from proguard.train.run import train
    from proguard.train.sft import train_sft
    from proguard.train.recipe import load_sft_recipe

    stages_wanted = {s.strip() for s in args.stages.split(",") if s.strip()}
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)
        print(f"[learning] {name}: {timings[name]} s", flush=True)

    s = time.perf_counter()
    reuse = args.reuse and (out / "tasks" / "dataset_dict.json").is_file() and (out / "distill").is_dir()
    taxonomy_path = build_taxonomy(REFERENCE / "donotanswer" / "do_not_answer_prompts.csv", out / "data",
                                   args.short_names, args.flat)
    train_path, eval_path, group_of = build_samples(args, out / "data")
    if reuse:  # the same seed and sizes rebuild the same samples; the saved tasks are what earlier stages trained on
        import datasets

        from taxonomy import load_taxonomy

        tasks, tax = datasets.load_from_disk(str(out / "tasks")), load_taxonomy(taxonomy_path)
        holdout = [n.id for n in tax.nodes() if n.name == (SHORT_NAMES[HOLDOUT_NAME] if args.short_names else HOLDOUT_NAME)]
    else:
        tasks, tax, holdout = build_task_splits(train_path, eval_path, taxonomy_path, out, args)
    sizes = {k: len(v) for k, v in tasks.items()}
    split_of = {tid: split for split in SPLITS for tid in tasks[split]["task_id"]}
    sizes["eval_questions_or_prompts"] = {sp: len({group_of[x] for x in tasks[sp]["sample_id"]}) for sp in SPLITS}
    sizes["train_free_text_targets"] = int(sum(tasks["train"]["ood"]))
    print(f"[learning] tasks {sizes}, holdout {holdout} ({HOLDOUT_NAME})", flush=True)
    if not reuse:
        dist = run_distill(tasks["train"], TemplateTeacher(description_words=0), out / "distill", tax,
                           config=DistillConfig(progress=False), tasks_label="train")
        (out / "distill_summary.json").write_text(json.dumps({"kept": dist.kept, "reasons": dist.summary["reasons"]}))
    distilled = json.loads((out / "distill_summary.json").read_text())
    lap("data + distill", s)

    base_dir = str(resolve_model_path(load_recipe(None, [f"model.name_or_path={args.model}"])))
    dtype = "bfloat16" if args.gpu else "float32"
    bf16 = str(args.gpu).lower()
    shared = [f"model.freeze_layers={args.freeze_layers}", f"data.balance_labels={str(args.balance_labels).lower()}"]
    common_sft = [*shared,
        f"model.name_or_path={args.model}", f"model.dtype={dtype}", f"sft.bf16={bf16}", f"data.dataset={out / 'distill'}",
        "data.modalities=[text]",
        "lengths.max_length=512", "lengths.overlong=drop", f"sft.per_device_train_batch_size={args.sft_batch}",
        f"sft.learning_rate={args.sft_lr}", f"sft.decision_token_weight={args.decision_token_weight}",
        "sft.lr_scheduler_type=constant", f"sft.max_steps={args.sft_steps}",
        "sft.gradient_checkpointing=false", f"sft.seed={args.seed}", "logging.report_to=[none]", "logging.logging_steps=4",
        f"checkpoint.save_steps={args.sft_steps}", "checkpoint.save_total_limit=1",
    ]
    rollouts = args.grpo_prompts * args.num_generations
    common_grpo = [*shared,
        f"data.prepared={out / 'tasks'}", f"model.dtype={dtype}", f"grpo.bf16={bf16}", "rewards=default",
        "lengths.max_prompt_length=512", f"lengths.max_completion_length={args.completion_tokens}",
        f"grpo.per_device_train_batch_size={rollouts}", f"grpo.num_generations={args.num_generations}",
        "data.modalities=[text]", f"grpo.learning_rate={args.grpo_lr}", f"grpo.beta={args.grpo_beta}", f"grpo.max_steps={args.grpo_steps}",
        f"grpo.temperature={args.grpo_temperature}", "grpo.gradient_checkpointing=false", f"grpo.seed={args.seed}",
        "logging.report_to=[none]", "logging.logging_steps=1",
        f"checkpoint.save_steps={args.grpo_steps}", "checkpoint.save_total_limit=1",
    ]
    finals: dict[str, str] = {}
    if "base" in stages_wanted:
        finals["base"] = base_dir
    trained_file = out / "trained.json"  # stage -> final checkpoint and its recipe overrides, for --reuse
    stage_recipes: dict[str, list[str] | None] = {}

    def trained(name: str, recipe: list[str], run: Callable[[], Any]) -> str:
        done = json.loads(trained_file.read_text()) if trained_file.is_file() else {}
        if args.reuse and name in done:
            entry = done[name] if isinstance(done[name], dict) else {"path": done[name]}
            if Path(entry["path"]).is_dir():
                print(f"[learning] {name}: reusing {entry['path']}", flush=True)
                stage_recipes[name] = entry.get("recipe")
                return entry["path"]
        s = time.perf_counter()
        path = str(run())
        lap(name, s)
        stage_recipes[name] = recipe
        done = json.loads(trained_file.read_text()) if trained_file.is_file() else {}  # another process may have added
        entry = {"path": path, "recipe": recipe, "seconds": timings[name]}
        trained_file.write_text(json.dumps({**done, name: entry}, indent=2) + "\n", encoding="utf-8")
        return path

    for key, name, extra in (("a", "a_sft_critique", []), ("b", "b_sft_label_only", ["data.label_only=true"])):
        if key in stages_wanted or (key == "a" and "c" in stages_wanted):
            recipe = [*common_sft, *extra, f"output_dir={out / name}"]
            finals[name] = trained(name, recipe, lambda recipe=recipe: train_sft(load_sft_recipe(None, recipe)))
    for key, name in (("c", "c_grpo_from_a"), ("d", "d_grpo_from_base")):
        if key in stages_wanted:
            init = finals["a_sft_critique"] if key == "c" else args.model
            recipe = [*common_grpo, f"model.name_or_path={init}", f"output_dir={out / name}"]
            finals[name] = trained(name, recipe, lambda recipe=recipe: train(load_recipe(None, recipe)))

    settings = GenerationSettings(max_new_tokens=args.completion_tokens)
    backends: dict[str, Any] = dict(rule_guards(tasks["train"], tax))
    keys = {"base": "base", "a_sft_critique": "a", "b_sft_label_only": "b", "c_grpo_from_a": "c", "d_grpo_from_base": "d"}
    for name, model_dir in finals.items():
        if keys[name] not in stages_wanted:  # (a) trained only as the start of (c)
            continue
        # the base model and GRPO from it never reach the answer format: their answers stop at the first word no
        # answer starts with (the same scores; the base bench took 234 s of 64-token chat in round 2)
        backends[name] = TransformersBackend(model_dir, settings, device="cuda" if args.gpu else "cpu", dtype=dtype,
                                             stop_malformed=name in ("base", "d_grpo_from_base"))
    dev_fits: dict[str, dict] = {}
    if (out / "data" / "dev_samples.jsonl").is_file() and (args.dev_questions or args.xstest_dev):
        from proguard.train.quickstart import fit_dev_threshold

        dev = build_dev_tasks(out / "data" / "dev_samples.jsonl", tax, holdout, args)
        print(f"[learning] dev split: {len(dev)} prompts ({sum(r == 'safe' for r in dev['request_label'])} safe)",
              flush=True)
        for name in [n for n in backends if n in STAGE_TITLES and n not in RULES and n != "base"]:
            s = time.perf_counter()
            # the quick start's fit: its line says the bias, or why there is none (a model that never states a label)
            fit = fit_dev_threshold(backends[name], dev, lambda line: print(f"[learning]{line}", flush=True), name,
                                    split=f"{out}'s dev split")
            if fit is None:
                continue
            dev_fits[name] = {"bias": fit.bias, "dev_balanced_acc": [fit.balanced_accuracy_unbiased, fit.balanced_accuracy],
                              "n_safe": fit.n_safe, "n_unsafe": fit.n_unsafe, "undecided": fit.undecided}
            backends[name + DEV_SUFFIX] = TransformersBackend(finals[name], settings, device="cuda" if args.gpu else "cpu",
                                                          dtype=dtype, label_bias=fit.bias)
            lap(f"dev threshold {name}", s)
    scores, rows = {}, {}
    for name, backend in backends.items():
        s = time.perf_counter()
        records = bench(backend, tasks, tax, out / "bench" / name,
                        require_think=name.removesuffix(DEV_SUFFIX) != "b_sft_label_only", batch_size=args.bench_batch)
        scores[name], rows[name] = score_stage(records, split_of, group_of, args)
        lap(f"bench {name}", s)
    gains = paired_gains(rows["a_sft_critique"], rows["c_grpo_from_a"], group_of, args) \
        if {"a_sft_critique", "c_grpo_from_a"} <= rows.keys() else {}
    # "clearly above both baselines" (issue 21) read on the same rows: each model stage minus each baseline
    over_baselines = {}
    for name in rows:
        if name.removesuffix(DEV_SUFFIX) not in STAGE_TITLES or name in RULES or name == "base":
            continue
        for base in (b for b in RULES if b in rows):
            paired = paired_gains(rows[base], rows[name], group_of, args)  # one bootstrap per pair, both metrics read
            over_baselines[f"{name} - {base}"] = {k: paired[f"eval_id/{k}"] for k in ("request_f1", "request_balanced_acc")}
    curves = {name: grpo_curve(out / name) for name in ("c_grpo_from_a", "d_grpo_from_base") if name in finals}
    results = {
        "args": vars(args), "sizes": sizes, "holdout": {"ids": holdout, "name": HOLDOUT_NAME},
        "distill": distilled["reasons"] or "all kept", "distill_kept": distilled["kept"], "base_model_dir": base_dir,
        "stages": scores, "paired_gain_c_minus_a": gains, "eval_id_request_over_baselines": over_baselines, "grpo": {k: summarize_curve(v) for k, v in curves.items()},
        "grpo_steps": curves, "dev_thresholds": dev_fits, "stage_recipes": stage_recipes, "timings_s": timings, "total_s": round(time.perf_counter() - t0, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = render_tables(scores, gains, results["grpo"], over_baselines)
    (out / "table.md").write_text(table + "\n", encoding="utf-8")
    plot_curves(out / "plots" / "grpo_rewards.png", curves)
    print(table)
    print(f"[learning] total {results['total_s']} s; results in {out / 'results.json'}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# GRPO logs, tables, plots
# ---------------------------------------------------------------------------------------------
CURVE_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "kl", "completions/mean_length",
              "completions/clipped_ratio", "format/valid_rate", "reward/binary/mean", "reward/category/mean")


def grpo_curve(run_dir: Path) -> list[dict]:
    """Per-step GRPO log rows (the keys of ``CURVE_KEYS`` present) from ``metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"step": r.get("step"), **{k: r[k] for k in CURVE_KEYS if k in r}} for r in rows if "reward" in r]


def summarize_curve(rows: list[dict]) -> dict:
    """First and last step, and means over the run, of the logged GRPO quantities."""
    if not rows:
        return {}

    def mean(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    half = max(1, len(rows) // 2)
    first, last = rows[:half], rows[-half:]
    return {
        "steps": len(rows),
        "mean": {k: mean(k) for k in CURVE_KEYS},
        "reward_first_half": round(sum(r["reward"] for r in first) / len(first), 4),
        "reward_second_half": round(sum(r["reward"] for r in last) / len(last), 4),
    }


def _cell(iv: dict | None) -> str:
    if not iv or iv.get("point") is None:
        return "n/a"
    if iv.get("low") is None:
        return f"{iv['point']:.3f}"
    return f"{iv['point']:.3f} [{iv['low']:.2f}, {iv['high']:.2f}]"


COLUMNS = {
    "eval_id": [("request F1", "eval_id", "request_f1"), ("request balanced acc", "eval_id", "request_balanced_acc"),
                ("response F1", "eval_id", "response_f1"),
                ("category exact", "eval_id", "category_exact"), ("format-valid", "eval_id", "format_valid")],
    "eval_ood": [("request F1", "eval_ood", "request_f1"), ("response F1", "eval_ood", "response_f1"),
                 ("OOD detection F1 (id+ood)", "eval_id+eval_ood", "ood_detection_f1"),
                 ("OOD description", "eval_ood", "ood_description"), ("OOD max-sim", "eval_ood", "ood_similarity"),
                 ("format-valid", "eval_ood", "format_valid")],
}


def render_tables(scores: dict, gains: dict, grpo: dict, over_baselines: dict | None = None) -> str:
    """Markdown tables: eval_id, eval_ood (point [95% CI]), each stage's eval_id request F1 and balanced accuracy minus
    each baseline's,
    the paired (c) - (a) gains and the GRPO logs."""
    parts = []
    for split, cols in COLUMNS.items():
        some = next(iter(scores.values()), {})
        n = some.get(split, {}).get("n")
        g = some.get(split, {}).get("groups")
        parts.append(f"**{split}** ({n} rows, {g} question groups; point [95% bootstrap CI])\n")
        parts.append("| stage | " + " | ".join(c[0] for c in cols) + " |")
        parts.append("| --- |" + " ---: |" * len(cols))
        for name, sc in scores.items():
            parts.append(f"| {title(name)} | " + " | ".join(_cell(sc[s].get(k)) for _, s, k in cols) + " |")
        parts.append("")
    if over_baselines:
        parts.append("**eval_id request F1 and balanced accuracy, stage minus baseline**, paired bootstrap over the "
                     "same question groups\n")
        parts.append("| stage - baseline | request F1 difference [95% CI] | balanced acc difference [95% CI] |")
        parts.append("| --- | ---: | ---: |")
        for key, ivs in over_baselines.items():
            stage, base = key.split(" - ")
            parts.append(f"| {title(stage)} - {title(base)} | "
                         f"{_cell(ivs['request_f1'])} | {_cell(ivs['request_balanced_acc'])} |")
        parts.append("")
    if gains:
        parts.append("**(c) GRPO minus (a) SFT**, paired bootstrap over the same question groups\n")
        parts.append("| metric | difference [95% CI] |")
        parts.append("| --- | ---: |")
        parts += [f"| {k} | {_cell(v)} |" for k, v in gains.items()]
        parts.append("")
    if grpo:
        keys = ("reward", "reward_std", "frac_reward_zero_std", "kl", "completions/mean_length", "format/valid_rate")
        parts.append("**GRPO logs** (means over the run; reward first half -> second half)\n")
        parts.append("| run | steps | " + " | ".join(keys) + " | reward 1st half -> 2nd half |")
        parts.append("| --- | ---: |" + " ---: |" * (len(keys) + 1))
        for name, g in grpo.items():
            if g:
                vals = " | ".join("n/a" if g["mean"].get(k) is None else f"{g['mean'][k]:.3f}" for k in keys)
                parts.append(f"| {STAGE_TITLES[name]} | {g['steps']} | {vals} | "
                             f"{g['reward_first_half']:.3f} -> {g['reward_second_half']:.3f} |")
    return "\n".join(parts)


def plot_curves(path: Path, curves: dict[str, list[dict]]) -> None:
    """GRPO reward (with its per-group spread) and format-valid rate per step, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, rows in curves.items():
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["reward"] for r in rows], marker="o", label=STAGE_TITLES[name])
        for key, ax, style in (("format/valid_rate", axes[1], "-"), ("frac_reward_zero_std", axes[1], ":")):
            ys = [r.get(key) for r in rows]
            if any(y is not None for y in ys):
                ax.plot(steps, ys, style, marker=".", label=f"{STAGE_TITLES[name]}: {key}")
    axes[0].set_title("GRPO mean reward per step")
    axes[1].set_title("format-valid rate / share of zero-spread groups")
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
