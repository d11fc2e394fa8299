"""``proguard demo``: render the policy prompt for a bundled sample and parse an answer to it."""

from __future__ import annotations

import argparse
import json

HELP = ("Render the policy prompt for one bundled sample and parse an answer to it (by default a canned, correct "
        "answer written from the sample's labels: no model runs).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard demo``."""
    p.add_argument("--taxonomy", default="default", help="bundled taxonomy name or YAML path")
    p.add_argument("--data", default=None, help="samples file (default: the bundled sample set)")
    p.add_argument("--sample", default="text-05", help="sample id to show")
    p.add_argument("--answer", default=None, help="completion to parse (default: the sample's correct answer)")


def run(args: argparse.Namespace) -> int:
    """Print the prompt messages and the parsed verdict as JSON."""
    from dataclasses import asdict

    from proguard.data import BUNDLED_SAMPLES, load_samples
    from proguard.inputs import check_source
    from proguard.protocol import PromptConfig, build_messages, format_answer, parse_completion
    from taxonomy import load_taxonomy

    tax = load_taxonomy(args.taxonomy)
    check_source(args.data or BUNDLED_SAMPLES)
    ds = load_samples(args.data or BUNDLED_SAMPLES, tax)
    matches = [r for r in ds if r["id"] == args.sample]
    if not matches:
        from proguard.errors import UsageError

        raise UsageError(f"no sample with id {args.sample!r}; ids: {', '.join(ds['id'][:10])}, ...")
    row = matches[0]
    messages = build_messages(row["modality"], row["request"], row["response"], tax)
    for m in messages:
        print(f"===== {m['role']} =====")
        for part in m["content"]:
            print(f"<{part['type']}>" if part["type"] in ("image", "video", "audio") else part["text"])
    level = PromptConfig().level(row["modality"], tax)
    category = row["category"]
    if category and level == "category":
        category = tax.parent(category).id if tax.parent(category) else category
    answer = args.answer or format_answer(
        row["modality"], row["request_label"], row["response_label"], category, "Checking the request against the policy."
    )
    print("===== answer (your --answer) =====" if args.answer else
          "===== answer (canned: written from the sample's own labels, no model ran; try --answer TEXT, or "
          "proguard moderate --model MODEL for a model's answer) =====")
    print(answer)
    parsed = parse_completion(answer, row["modality"])
    print("===== parsed =====")
    print(json.dumps({"ok": parsed.ok, **asdict(parsed)}, indent=2))
    return 0 if parsed.ok else 1
