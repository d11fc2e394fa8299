"""Label-margin AUC of a trained guard on a large held-out set: the quick start's seed, ~390 prompts.

The quick start's own held-out split is 28 in-taxonomy prompts (one prompt is 0.036 of accuracy), too few to
tell two SFT variants apart. This rebuilds the seed's split with the training sizes the model was trained
with (so its training prompts are the same and never scored) and takes up to 60 questions per shown
Do-Not-Answer area and 150 XSTest safe prompts after them, rendered as the evaluation prompts are; it reports
the ROC AUC of ``benchmarks/label_probe.py``'s margin, and the balanced accuracy with the model's own threshold
and with the best one (an upper bound: chosen on the same prompts). Used for BENCHMARKS.md, "Quick start,
round 5" (about 1 s per prompt on one thread).

    OMP_NUM_THREADS=1 python benchmarks/label_auc_large.py runs/quickstart/sft/final --seed 0 --train-per-area 18 --train-safe 72
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from label_probe import auc, margins  # benchmarks/ is on sys.path when this script runs
    from proguard.bench.label_bias import balanced_accuracy
    from proguard.train import quickstart_data as qd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a trained model folder (e.g. runs/quickstart/sft/final)")
    ap.add_argument("--seed", type=int, default=0, help="the quick start's --seed the model was trained with")
    ap.add_argument("--train-per-area", type=int, default=qd.Sizes.train_per_area,
                    help="training questions per shown area the model was trained with (default: the quick start's)")
    ap.add_argument("--train-safe", type=int, default=qd.Sizes.train_safe,
                    help="XSTest safe training prompts the model was trained with (default: the quick start's)")
    ap.add_argument("--data-root", default=None, help="Do-Not-Answer + XSTest root (default: as the quick start)")
    args = ap.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"model {args.model}: no config.json there (pass a trained model folder such as .../sft/final)")
    if qd.resolve_data_root(args.data_root) is None:
        ap.error("no Do-Not-Answer/XSTest data root found: pass --data-root DIR")
    torch.set_num_threads(1)
    sizes = qd.Sizes(train_per_area=args.train_per_area, train_safe=args.train_safe, eval_per_area=60,
                     eval_safe=150, dev_per_area=1, dev_safe=1)  # dev must not be empty; it is not scored
    data = qd.quickstart_data(Path(tempfile.mkdtemp()), args.data_root, args.seed, sizes)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    scored = margins(tok, model, list(data.tasks["eval_id"]))
    pos = [m for label, m in scored if label == "unsafe"]
    neg = [m for label, m in scored if label == "safe"]
    best = max(balanced_accuracy(scored, -m) for m in [0.0, *pos, *neg])  # a threshold at each margin
    print(json.dumps({"model": args.model, "seed": args.seed, "n_unsafe": len(pos), "n_safe": len(neg),
                      "auc": round(auc(pos, neg), 4),
                      "own_threshold_balanced_acc": round(balanced_accuracy(scored, 0.0), 3),
                      "best_threshold_balanced_acc": round(best, 3)}))


if __name__ == "__main__":
    main()
