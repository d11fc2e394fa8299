"""GRPO signal of the OOD term: share of OOD prompt groups whose description rewards have non-zero spread.

GRPO's advantage is a reward minus its group's mean: a group whose OOD rewards are all equal teaches
the guard nothing about naming risks. This script takes the OOD training tasks of the tiny CPU
recipe (``recipes/tiny/grpo_cpu.yaml``: bundled samples, own category hidden in 30% of tasks, the
default taxonomy), and for each one draws GRPO groups of rollout names the way a guard that has not
seen the hidden category's name would answer: paraphrases built from the words of the hidden
node's phrases, generic names ("Harmful Content"), names of other categories, the odd ID. The
hidden node's exact name and synonyms are never drawn (the prompt does not show them).

It reports, for the paper formula (``ood_similarity``, ProGuard's thresholds) and the new
``ood_description`` reward (the default preset's term), over the same groups:

* the share of groups whose OOD rewards have non-zero spread (std > 1e-6), over all rollouts and
  over the free-text rollouts only (IDs score 0 under both, which is spread the name's quality does
  not cause);
* the mean within-group std of those rewards.

The tiny recipe's random policy writes no well-formed answer, so its own rollouts would show zero
spread for any reward; simulated names measure the reward, not that model.

Run from the project root:

    .venv/bin/python benchmarks/bench_ood_signal.py [--groups-per-task 50] [--group-size 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proguard.train.recipe import load_recipe  # noqa: E402
from proguard.train import build_train_dataset  # noqa: E402
from rewards.ood_description import OODDescription  # noqa: E402
from rewards.ood_similarity import OODSimilarity  # noqa: E402
from rewards.types import Target, Verdict  # noqa: E402
from taxonomy import load_taxonomy  # noqa: E402

RECIPE = ROOT / "recipes" / "tiny" / "grpo_cpu.yaml"
GENERIC = ["Harmful Content", "Unsafe Request", "Illegal Activity", "Dangerous Content", "Policy Violation"]
FILLERS = ["Content", "Material", "Risk", "Activities", "Harm", "Promotion", "Instructions", "Depiction"]


def groups_for(target: Target, tax, rng: random.Random, n_groups: int, size: int) -> list[list[Verdict]]:
    """GRPO groups of rollout answers for one OOD task (see the module docstring)."""
    phrases = [target.ood_name or "", *target.ood_synonyms]
    words = [w.strip(",&()") for p in phrases for w in p.split() if len(w) > 3] or ["Risk"]
    others = [n.name for n in tax.nodes() if n.name != target.ood_name]
    out = []
    for _ in range(n_groups):
        pool = [f"{rng.choice(words)} {rng.choice(FILLERS)}" for _ in range(3)]
        pool += [f"{rng.choice(words)} and {rng.choice(words)}".title(), rng.choice(GENERIC), rng.choice(others)]
        group = []
        for _ in range(size):
            if rng.random() < 0.1:
                group.append(Verdict("text", "unsafe", "safe", "id", rng.choice(tax.ids()), "..."))
            else:
                group.append(Verdict("text", "unsafe", "safe", "free_text", rng.choice(pool), "..."))
        out.append(group)
    return out


def spread_stats(scores: list[list[float]]) -> dict[str, float]:
    """Share of groups with non-zero spread and the mean within-group std."""
    stds = [statistics.pstdev(g) if len(g) > 1 else 0.0 for g in scores]
    return {"share_nonzero_spread": sum(s > 1e-6 for s in stds) / len(stds), "mean_group_std": statistics.fmean(stds),
            "groups": len(stds)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(RECIPE))
    ap.add_argument("--groups-per-task", type=int, default=50)
    ap.add_argument("--group-size", type=int, default=None, help="rollouts per group (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    recipe = load_recipe(args.recipe)
    size = args.group_size or recipe.grpo.num_generations
    tasks = build_train_dataset(recipe)
    ood_rows = [Target.from_columns(row) for row in tasks if row["ood"]]
    tax = load_taxonomy(recipe.data.taxonomy)
    print(f"{args.recipe}: {len(tasks)} training tasks, {len(ood_rows)} OOD; groups of {size}, "
          f"{args.groups_per_task} per OOD task")
    if not ood_rows:
        print("no OOD tasks: nothing to measure", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    cache = tempfile.mkdtemp()
    paper = OODSimilarity(device="cpu", cache_dir=cache)
    new = OODDescription(taxonomy=recipe.data.taxonomy, index=paper.index)
    results = {"recipe": args.recipe, "group_size": size, "ood_tasks": len(ood_rows)}
    all_groups = [(t, g) for t in ood_rows for g in groups_for(t, tax, rng, args.groups_per_task, size)]
    flat_p = [p for _, g in all_groups for p in g]
    flat_t = [t for t, g in all_groups for _ in g]
    for label, reward in (("paper formula (ood_similarity)", paper), ("ood_description (new)", new)):
        totals = reward(flat_p, flat_t).total
        per_group, free_only = [], []
        k = 0
        for _, g in all_groups:
            scores = [float(s) for s in totals[k : k + len(g)]]
            per_group.append(scores)
            free_only.append([s for s, p in zip(scores, g, strict=True) if p.category_kind == "free_text"])
            k += len(g)
        results[label] = {"all": spread_stats(per_group), "free_text_only": spread_stats([g for g in free_only if g])}
        a, f = results[label]["all"], results[label]["free_text_only"]
        print(f"  {label:<32} non-zero spread {a['share_nonzero_spread']:.3f} (free text only "
              f"{f['share_nonzero_spread']:.3f}); mean group std {a['mean_group_std']:.3f} "
              f"(free text only {f['mean_group_std']:.3f}); {a['groups']} groups")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
