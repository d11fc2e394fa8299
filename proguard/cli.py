"""The ``proguard`` command line: a thin dispatcher over ``proguard.commands.<name>`` modules.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``,
keeps heavy imports inside ``run`` so ``proguard --help`` stays fast, and holds no logic of its
own beyond argument handling: the work lives in the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "demo", "bench", "moderate", "rewards", "synonyms", "tasks", "distill", "sft", "train", "quickstart", "vllm-serve",
]
"""Sub-commands, in the order ``--help`` lists them; each is ``proguard/commands/<name>.py``."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="proguard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"proguard.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``proguard`` script."""
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
