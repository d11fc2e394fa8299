"""``proguard vllm-serve RECIPE.yaml [key=value ...]``: start the vLLM server of ``rollout.vllm_mode: server``.

Serves the recipe's policy (with its image pixel budget written into the processor files, so the
server counts image tokens like the trainer) with the arguments TRL's client needs: the command
``trl vllm-serve`` runs, built from the recipe's ``rollout`` and ``lengths`` keys. Run it on the
GPUs the trainer does not use, then ``accelerate launch`` the training on the others; docs/vllm_cpu.md
has the commands. ``--print`` shows the command instead of running it.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from proguard.commands.train import add_safety_arguments, allowed_env

HELP = "Start the vLLM server a recipe's rollout.vllm_mode=server training talks to (trl vllm-serve)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``proguard vllm-serve``."""
    p.add_argument("recipe", help="recipe YAML, e.g. recipes/tiny/grpo_cpu.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides, e.g. rollout.server_port=8001")
    p.add_argument("--host", help="address to listen on (default: rollout.server_host)")
    p.add_argument("--port", type=int, help="port (default: rollout.server_port)")
    p.add_argument(
        "--vllm-args", default="", metavar="'ARGS'", help="more `vllm serve` arguments, e.g. '--max-num-seqs 64'"
    )
    p.add_argument("--print", action="store_true", help="print the command (and its environment) and exit")
    add_safety_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Build the server command from the recipe and replace this process with it."""
    from proguard.train.errors import TrainError
    from proguard.train.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides, allow_env=allowed_env(args.allow_env))

    from proguard.train import rollout as vllm_rollout

    if not vllm_rollout.vllm_installed():
        raise TrainError(
            "needs vLLM: install the `vllm` extra: pip install 'proguard[vllm]' "
            "(or train with rollout.backend=hf, which needs no server)"
        )
    model_path = vllm_rollout.serve_policy(recipe, allow_download=args.allow_download)
    command = vllm_rollout.serve_command(
        recipe, model_path, host=args.host, port=args.port, extra_args=shlex.split(args.vllm_args)
    )
    env = vllm_rollout.serve_env()
    host = bound_host(command)
    if not is_loopback(host):
        print(exposed_warning(host), file=sys.stderr, flush=True)
    if args.print:
        print(f"VLLM_SERVER_DEV_MODE=1 {shlex.join(command)}")
        return 0
    print(f"[proguard] {shlex.join(command)}", flush=True)
    vllm_rollout.exec_server(command, env)
    return 0  # not reached: exec replaced the process


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bound_host(command: list[str]) -> str:
    """The address the server command listens on (its last ``--host``; vLLM's default is all interfaces)."""
    host = "0.0.0.0"
    for i, item in enumerate(command):
        if item == "--host" and i + 1 < len(command):
            host = command[i + 1]
        elif item.startswith("--host="):
            host = item.partition("=")[2]
    return host


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    return host in LOOPBACK or host.startswith("127.")


def exposed_warning(host: str) -> str:
    """The loud warning printed before a server binds a non-loopback address."""
    bar = "!" * 78
    return (
        f"{bar}\nWARNING: the vLLM server will listen on {host}, not on loopback.\n"
        "It runs with TRL's weight-update endpoints (VLLM_SERVER_DEV_MODE=1), which have NO authentication:\n"
        "anyone who can reach this address can replace the served weights or read what the trainer sends.\n"
        "Bind 127.0.0.1 (the default) unless the network between trainer and server is private.\n"
        f"{bar}"
    )
