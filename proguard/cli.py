"""The ``proguard`` command line: a thin dispatcher over ``proguard.commands.<name>`` modules.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``,
keeps heavy imports inside ``run`` so ``proguard --help`` stays fast, and holds no logic of its
own beyond argument handling: the work lives in the library.

Errors are turned into one line here, once for every command: the project's own errors
(``proguard.errors``) become ``proguard <cmd>: error: <message>`` on stderr and their exit code
(2: bad input, 1: the run failed); ``--debug`` shows the traceback instead. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DESCRIPTION = (
    "Train and evaluate proactive safety guards: GRPO on TRL with pluggable rewards, held-out-category "
    "tasks, benchmarks and moderation. Start with `proguard quickstart` (SFT then GRPO of a pretrained "
    "SmolLM2-135M guard on CPU, with a held-out before/after table); `proguard COMMAND --help` for each command."
)

COMMANDS = [
    "demo", "bench", "moderate", "rewards", "suites", "synonyms", "tasks", "distill", "sft", "train", "quickstart",
    "vllm-serve",
]
"""Sub-commands, in the order ``--help`` lists them; each is ``proguard/commands/<name>.py``."""

# The lower layers (taxonomy, synonym_bank) cannot import proguard.errors: their errors are mapped
# here by class name and module, usage (2) or run failure (1).
FOREIGN_ERRORS = {
    ("taxonomy.model", "TaxonomyError"): 2,
    ("synonym_bank.bank", "BankError"): 2,
    ("synonym_bank.lexical", "WordNetUnavailable"): 1,
    ("synonym_bank.index", "EmbeddingModelError"): 1,
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="proguard", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"proguard.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def exit_code(exc: BaseException) -> int | None:
    """The exit code of one of the project's errors, or ``None`` for anything else (a bug)."""
    from proguard.errors import ProguardError

    if isinstance(exc, ProguardError):
        return exc.exit_code
    for cls in type(exc).__mro__:
        code = FOREIGN_ERRORS.get((cls.__module__, cls.__name__))
        if code is not None:
            return code
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``proguard`` script: the project's own errors become one line and an exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(argv) and argv[0] == "--debug"
    sub = _subcommand(argv[1:] if debug else argv)
    if sub is not None:  # e.g. ``proguard bench compare``: a command line of its own
        module, rest = sub
        words = (argv[1:] if debug else argv)[:2]
        p = argparse.ArgumentParser(prog=f"proguard {' '.join(words)}", description=module.HELP)
        module.add_arguments(p)
        args, name, run = p.parse_args(rest), " ".join(words), module.run
    else:
        args = build_parser().parse_args(argv)
        debug, name, run = args.debug, args.command, args._run
    try:
        return int(run(args) or 0)
    except BrokenPipeError:  # `proguard ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except Exception as exc:
        code = exit_code(exc)
        if code is None or debug:
            raise
        message = str(exc).strip() or type(exc).__name__
        print(f"proguard {name}: error: {message}", file=sys.stderr)
        return code


def _subcommand(argv: list[str]):
    """``(module, remaining argv)`` when ``argv`` starts with a command and one of its ``SUBCOMMANDS``."""
    if len(argv) < 2 or argv[0] not in COMMANDS:
        return None
    parent = importlib.import_module(f"proguard.commands.{argv[0].replace('-', '_')}")
    target = getattr(parent, "SUBCOMMANDS", {}).get(argv[1])
    return (importlib.import_module(target), argv[2:]) if target else None


if __name__ == "__main__":
    sys.exit(main())
