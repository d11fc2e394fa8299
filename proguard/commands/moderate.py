"""``proguard moderate``: classify one input (text, an image, or both) or a JSONL file of inputs with
a trained guard, printing each parsed verdict as one line of JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from proguard.commands.bench import add_backend_arguments, backend_from_args

MODERATE_MAX_NEW_TOKENS = 512
"""Default completion budget of one verdict (``bench`` uses the training budget, 1024)."""

HELP = "Classify a request/response/image (or a JSONL file of them) with a guard; prints verdicts as JSON."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard moderate``."""
    add_backend_arguments(p)
    g = p.add_argument_group("input (one of: --request/--response with at most one --image/--video/--audio, or --input)")
    g.add_argument("--request", default=None, help="the user's request text")
    g.add_argument("--response", default=None, help="the assistant's response text (needs --request)")
    g.add_argument("--image", default=None, help="image path (alone: judge the image; with --request: text+image)")
    g.add_argument("--video", default=None,
                   help="video file or frame directory (alone: judge the video; with --request: text+video)")
    g.add_argument("--audio", default=None,
                   help="audio file: wav, flac, ogg, mp3 (alone: judge the audio; with --request: text+audio)")
    g.add_argument("--input", default=None,
                   help="JSONL file, one object per line with request, response, image (path relative to the file), id")
    p.add_argument("--taxonomy", default="default", help="policy taxonomy: bundled name or YAML path")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--raw", action="store_true", help="also print the raw completion")
    # A guard's answer block is ~20 tokens and a trained guard reasons in a few hundred; bench keeps 1024
    # (the training completion budget) to score long reasoning, but one interactive verdict should not
    # wait for 1024 tokens of an untrained model. A cut answer is reported as malformed (exit 1).
    p.set_defaults(max_new_tokens=MODERATE_MAX_NEW_TOKENS)
    for action in p._actions:  # argparse has no public way to reword one inherited option's help
        if action.dest == "max_new_tokens":
            action.help = f"completion length limit (default {MODERATE_MAX_NEW_TOKENS}; bench uses 1024)"


def read_inputs(path: Path) -> list[dict]:
    """Inputs from a JSONL file; image paths are made relative to the file; errors name the line."""
    from proguard.data import read_jsonl_objects
    from proguard.errors import UsageError
    from proguard.inputs import check_utf8

    items = []
    if path.is_file():
        check_utf8(path)
    try:
        for n, item in read_jsonl_objects(path):
            for key in ("image", "video", "audio"):  # media paths are relative to the file
                if isinstance(item.get(key), str) and not Path(item[key]).is_absolute():
                    item[key] = str(path.parent / item[key])
            item.setdefault("id", str(n))
            items.append(item)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not items:
        raise UsageError(f"{path}: no inputs")
    return items


def run(args: argparse.Namespace) -> int:
    """Print one JSON verdict per input; exit 1 when any answer was malformed."""
    from proguard.hub import check_model_source

    if args.backend != "openai":  # a missing local directory fails before torch is even imported
        check_model_source(args.model)
    from proguard.bench.guard import Guard
    from proguard.errors import UsageError

    single = any(v is not None for v in (args.request, args.response, args.image, args.video, args.audio))
    if single == bool(args.input):
        raise UsageError("give either --request/--response/--image/--video/--audio or --input FILE")
    items = read_inputs(Path(args.input)) if args.input else [
        {"request": args.request, "response": args.response, "image": args.image, "video": args.video,
         "audio": args.audio}
    ]
    where = args.base_url if args.backend == "openai" else args.model
    backend = backend_from_args(args)
    bias = getattr(backend, "label_bias", 0.0)  # the transformers backend's decision threshold (label_bias.json)
    print(f"moderating {len(items)} input(s) with {where} ({args.backend}, up to {args.max_new_tokens} new tokens"
          + (f", label bias {bias:+.2f}" if bias else "") + ") ...", file=sys.stderr)
    guard = Guard(backend, args.taxonomy, require_think=not args.no_require_think, batch_size=args.batch_size)
    try:
        results = guard.moderate_many(items)
    except ValueError as exc:  # a bad input (missing image, response without request) names the input
        raise UsageError(f"{args.input or 'input'}: {exc}") from None
    all_ok = True
    for item, res in zip(items, results, strict=True):
        out = guard.to_json(res.parsed)
        if "id" in item:
            out = {"id": item["id"], **out}
        if args.raw:
            out["completion"] = res.completion
        all_ok &= res.parsed.ok
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return 0 if all_ok else 1
