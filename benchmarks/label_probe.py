"""Does a trained guard *rank* safe and unsafe requests apart, even where its greedy answer is one label for all?

For each task row it reads the logit margin ``log p(" unsafe") - log p(" safe")`` at the label position of the
template critique (the prompt, then ``<think>\\nThe request is``) and reports per split the mean margin of
unsafe and safe rows, the ROC AUC of the margin (0.5: no signal) and how many rows the greedy label calls
unsafe (margin > 0). A model with AUC well above 0.5 but every margin on one side has learnt the signal but
not the threshold; AUC near 0.5 means nothing was learnt. Used for the quick start's SFT recipe
(BENCHMARKS.md, "Quick start on SmolLM2-135M").

    OMP_NUM_THREADS=1 python benchmarks/label_probe.py runs/quickstart/sft/final runs/quickstart/data/tasks
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import mean


def margins(tok, model, rows) -> list[tuple[str, float]]:
    """(request label, margin) per row."""
    import torch

    from proguard.bench.label_bias import label_token_ids

    safe, unsafe = label_token_ids(tok)  # the words the quick start's dev threshold compares
    out = []
    for r in rows:
        text = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        ids = tok(text + "<think>\nThe request is", return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            logp = model(ids).logits[0, -1].log_softmax(-1)
        out.append((r["request_label"], float(logp[unsafe] - logp[safe])))
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(an unsafe row's margin > a safe row's), ties half."""
    if not pos or not neg:
        return None
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def main() -> None:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a trained model folder (e.g. runs/quickstart/sft/final)")
    ap.add_argument("tasks", help="the task splits (e.g. runs/quickstart/data/tasks)")
    ap.add_argument("--splits", default="eval_id,eval_ood", help="comma-separated splits (default eval_id,eval_ood)")
    args = ap.parse_args()
    if not (Path(args.model) / "config.json").is_file():
        ap.error(f"model {args.model}: no config.json there (pass a trained model folder such as .../sft/final)")
    if not (Path(args.tasks) / "dataset_dict.json").is_file():
        ap.error(f"tasks {args.tasks}: not a saved task DatasetDict (pass .../data/tasks)")
    torch.set_num_threads(1)
    tasks = datasets.load_from_disk(args.tasks)
    unknown = [s for s in args.splits.split(",") if s not in tasks]
    if unknown:
        ap.error(f"--splits: {', '.join(unknown)} not in {args.tasks} (it has {', '.join(tasks)})")
    tok = AutoTokenizer.from_pretrained(args.model)  # loaded once for every split
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    for split in args.splits.split(","):
        scored = margins(tok, model, list(tasks[split]))
        pos = [m for label, m in scored if label == "unsafe"]
        neg = [m for label, m in scored if label == "safe"]
        a = auc(pos, neg)
        print(f"{split}: n {len(scored)}  margin unsafe rows {mean(pos) if pos else float('nan'):+.2f}  safe rows "
              f"{mean(neg) if neg else float('nan'):+.2f}  AUC {'-' if a is None else f'{a:.3f}'}  "
              f"called unsafe {sum(m > 0 for _, m in scored)}")


if __name__ == "__main__":
    main()
