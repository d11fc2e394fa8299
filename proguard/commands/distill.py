"""``proguard distill``: a teacher writes reasoning + answer for labelled tasks; checked answers become an SFT dataset.

The teacher is ``template`` (offline, a fixed-form critique from the row's own fields) or a model
behind any bench backend (``openai``, ``transformers``, ``vllm``) prompted with the gold answer.
Rerunning the same command resumes from the generation cache in ``--out``.
"""

from __future__ import annotations

import argparse
import os

HELP = "Distil teacher critiques (reasoning + answer, checked against gold) into an SFT dataset and report.md."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard distill``."""
    t = p.add_argument_group("teacher")
    t.add_argument("--teacher", choices=("template", "openai", "transformers", "vllm"), default="template",
                   help="template: offline fixed-form critique from the row's fields (no model); "
                   "otherwise a model behind that bench backend (default: template)")
    t.add_argument("--model", default=None, help="teacher checkpoint path or hub ID; with openai, the served model name")
    t.add_argument("--base-url", default=None, help="openai: endpoint, e.g. http://127.0.0.1:8000/v1")
    t.add_argument("--api-key-env", default="OPENAI_API_KEY", help="openai: environment variable with the API key")
    t.add_argument("--timeout", type=float, default=120.0, help="openai: seconds per request (default 120)")
    t.add_argument("--max-retries", type=int, default=3, help="openai: retries after a timeout, 429 or 5xx (default 3)")
    t.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight per batch (default 8)")
    t.add_argument("--device", default="auto", help="transformers: cpu, cuda... (default: cuda if available)")
    t.add_argument("--dtype", default="auto", help="transformers: float32, bfloat16... (default: bf16 on GPU)")
    t.add_argument("--max-new-tokens", type=int, default=1024, help="teacher completion length limit (default 1024)")
    t.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    t.add_argument("--top-p", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--template", default=None,
                   help="teacher prompt template ($placeholders; default: proguard/assets/distill/teacher_prompt.md)")
    t.add_argument("--description-words", type=int, default=12,
                   help="template teacher: words of the category description quoted (default 12; 0 = none)")
    d = p.add_argument_group("tasks")
    d.add_argument("--tasks", default=None, help="a saved task dataset (proguard tasks --out) or a .parquet file")
    d.add_argument("--split", default=None,
                   help="split of a saved or built task dataset (default: train; plain --data tasks have none)")
    d.add_argument("--data", default=None, help="samples file to build tasks from (default: the bundled sample set)")
    d.add_argument("--taxonomy", default="default", help="source taxonomy: bundled name or YAML path")
    d.add_argument("--holdout", default=None, help="building from --data: source IDs held out (comma-separated)")
    d.add_argument("--shuffle-ids", action="store_true", help="building from --data: renumber IDs per task")
    d.add_argument("--task-seed", type=int, default=0, help="building from --data: seed of the task generator")
    d.add_argument("--no-descriptions", action="store_true", help="building from --data: category names only in prompts")
    d.add_argument("--limit", type=int, default=None, help="distil only the first N rows")
    o = p.add_argument_group("run")
    o.add_argument("--out", required=True, help="output directory (holds the generation cache: rerun to resume)")
    o.add_argument("--batch-size", type=int, default=16)
    o.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Distil and print the counts and where the outputs are; bad input is one line on stderr (exit 2)."""
    import sys

    from proguard.data import DataError
    from proguard.errors import ProguardError
    from taxonomy import TaxonomyError

    try:
        return _run(args)
    except (ProguardError, DataError, TaxonomyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)


def _run(args: argparse.Namespace) -> int:
    from proguard.distill.gold import DistillError
    from proguard.distill.runner import DistillConfig, run_distill
    from proguard.distill.source import tasks_from_disk, tasks_from_samples
    from proguard.distill.teachers import TeacherPrompt, make_teacher
    from proguard.protocol import PromptConfig
    from proguard.tasks.config import TaskConfig
    from taxonomy import load_taxonomy

    taxonomy = load_taxonomy(args.taxonomy)
    if args.tasks:
        if args.data or args.holdout or args.shuffle_ids:
            raise DistillError("--tasks is a prepared task dataset; --data/--holdout/--shuffle-ids build one instead")
        tasks, label = tasks_from_disk(args.tasks, args.split or "train")
    else:
        prompt = PromptConfig(descriptions=not args.no_descriptions)
        cfg = None
        if args.holdout or args.shuffle_ids:
            cfg = TaskConfig(holdout=args.holdout or [], shuffle_ids=args.shuffle_ids, seed=args.task_seed, prompt=prompt)
        tasks, label = tasks_from_samples(args.data, taxonomy, cfg, args.split, prompt)
    teacher = make_teacher(args.teacher, _backend(args), **(
        {"description_words": args.description_words} if args.teacher == "template" else {}))
    result = run_distill(
        tasks, teacher, args.out, taxonomy, prompt=TeacherPrompt(args.template),
        config=DistillConfig(batch_size=args.batch_size, limit=args.limit, progress=not args.no_progress),
        tasks_label=label,
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.rejected.items())) or "none"
    print(f"rows {result.rows}: kept {result.kept}, rejected {result.rows - result.kept} ({reasons}); "
          f"{result.generated} generated, {result.cached} cached")
    print(f"wrote {result.dataset_path} and {result.report_path}")
    return 0 if result.kept else 1


def _backend(args: argparse.Namespace):
    if args.teacher == "template":
        return None
    from proguard.bench.backends import GenerationSettings, make_backend
    from proguard.distill.gold import DistillError

    if not args.model:
        raise DistillError(f"--teacher {args.teacher} needs --model")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                  top_p=args.top_p, seed=args.seed)
    options: dict = {}
    if args.teacher == "transformers":
        options = {"device": args.device, "dtype": args.dtype}
    elif args.teacher == "openai":
        options = {"timeout": args.timeout, "max_retries": args.max_retries, "concurrency": args.concurrency}
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    try:
        return make_backend(args.teacher, args.model, settings, base_url=args.base_url, api_key=api_key, **options)
    except ImportError as exc:
        raise DistillError(str(exc)) from None
    except ValueError as exc:
        raise DistillError(f"--teacher {args.teacher}: {exc}") from None
