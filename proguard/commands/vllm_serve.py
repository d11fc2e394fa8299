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


def run(args: argparse.Namespace) -> int:
    """Build the server command from the recipe and replace this process with it."""
    from proguard.train.errors import TrainSetupError
    from proguard.train.recipe import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)

    from proguard.train import rollout as vllm_rollout

    if not vllm_rollout.vllm_installed():
        raise TrainSetupError(
            "needs vLLM: install the `vllm` extra: pip install 'proguard[vllm]' "
            "(or train with rollout.backend=hf, which needs no server)"
        )
    model_path = vllm_rollout.serve_policy(recipe)
    command = vllm_rollout.serve_command(
        recipe, model_path, host=args.host, port=args.port, extra_args=shlex.split(args.vllm_args)
    )
    env = vllm_rollout.serve_env()
    if args.print:
        print(f"VLLM_SERVER_DEV_MODE=1 {shlex.join(command)}")
        return 0
    print(f"[proguard] {shlex.join(command)}", flush=True)
    vllm_rollout.exec_server(command, env)
    return 0  # not reached: exec replaced the process
