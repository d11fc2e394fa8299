"""The policy checkpoint and its processor: resolve ``model.name_or_path``, load the processor, prepare the policy dir."""

from __future__ import annotations

from pathlib import Path

from proguard.hub import local_model_or_download
from proguard.outputs import replace_output_dir
from proguard.train.errors import TrainError
from proguard.train.recipe import Recipe

REWARD_NAME = "proguard"
"""TRL logs the composite reward's total as ``rewards/proguard/mean``."""
POLICY_DIR_KIND = "policy-init"
POLICY_SOURCE_FILE = "proguard_policy_source.txt"
# Files a processor writes with save_pretrained; a prepared policy dir gets fresh ones, never links.
_PROCESSOR_FILES = (
    "preprocessor_config.json",
    "processor_config.json",
    "video_preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
)


def resolve_model_path(r: Recipe, *, allow_download: bool = False) -> str:
    """A local path of the policy (or, with ``allow_download``, a hub ID); a named model (``tiny``,
    ``tiny-omni``, ``smollm2-135m``: ``proguard.models.named``) is built or converted once and cached. Offline by default: a name that is not a local directory is an error
    naming ``--allow-download``, before anything is fetched."""
    from proguard.models.named import named_model_path

    named = named_model_path(r.model.name_or_path)
    if named is not None:
        return str(named)
    return local_model_or_download(r.model.name_or_path, allow_download, what="model.name_or_path")


def is_omni_policy(model_config) -> bool:
    """Whether the policy is an omni thinker (Qwen2.5-Omni / Qwen3-Omni class: audio + vision in, text out)."""
    return "omni" in str(getattr(model_config, "model_type", ""))


def media_inputs(model_path: str, processor, model_config):
    """The ``OmniInputs`` that encodes this policy's video and audio (and, for omni policies, images)."""
    from proguard.models.omni_inputs import OmniInputs
    from proguard.models.tiny_omni import has_omni_inputs, load_omni_inputs

    if has_omni_inputs(model_path) or is_omni_policy(model_config):
        return load_omni_inputs(model_path)
    return OmniInputs(processor.tokenizer, processor.image_processor, None, getattr(processor, "video_processor", None),
                      video_time_key="second_per_grid_ts")


def is_text_only_policy(model_path: str, r: Recipe) -> bool:
    """Whether the checkpoint is a text-only causal LM (no vision or audio config; a ``...ForCausalLM`` class)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, trust_remote_code=r.model.trust_remote_code)
    if any(hasattr(config, k) for k in ("vision_config", "audio_config", "thinker_config")):
        return False
    return any(a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or []))


def check_policy_modalities(model_path: str, processor, modalities, r) -> None:
    """A text-only policy (its processor is a tokenizer) trains on text rows only: anything else is an error naming
    ``data.modalities``, before any weights load. Omni policies (also a tokenizer here) are exempt."""
    from transformers import ProcessorMixin

    from proguard.models.tiny_omni import has_omni_inputs

    if isinstance(processor, ProcessorMixin) or has_omni_inputs(model_path):
        return
    other = sorted({m for m in modalities if m != "text"})
    if other:
        raise TrainError(
            f"model.name_or_path: {r.model.name_or_path} is a text-only model but the training data has "
            f"{', '.join(other)} rows; set data.modalities: [text] (or train a vision-language policy such as 'tiny')"
        )


def load_processor(model_path: str, r: Recipe):
    """The policy's processor, left-padded as TRL needs, with the recipe's image pixel budget.

    For the tiny omni thinker it is the tokenizer: TRL then sees a text model, and every medium goes
    through ``OmniInputs`` (``media_inputs``; why in proguard/models/omni_inputs.py). For a text-only
    causal LM (``smollm2-135m``) it is the tokenizer too, and only text rows may train it
    (``check_policy_modalities``).
    """
    from transformers import AutoProcessor, AutoTokenizer, ProcessorMixin

    from proguard.models.tiny_omni import has_omni_inputs

    if has_omni_inputs(model_path):
        return AutoTokenizer.from_pretrained(model_path, padding_side="left", truncation_side="left")

    processor = AutoProcessor.from_pretrained(
        model_path, padding_side="left", truncation_side="left", trust_remote_code=r.model.trust_remote_code
    )
    if not isinstance(processor, ProcessorMixin) and is_text_only_policy(model_path, r):
        if r.images.max_pixels or r.images.min_pixels:
            raise TrainError(f"images.max_pixels: {r.model.name_or_path} is a text-only model (no image processor); "
                             "leave images.max_pixels/min_pixels null")
        processor.padding_side, processor.truncation_side = "left", "left"
        if processor.pad_token is None:
            processor.pad_token = processor.eos_token
        return processor
    if not isinstance(processor, ProcessorMixin):
        raise TrainError(
            f"model.name_or_path: {r.model.name_or_path}: its processor is a {type(processor).__name__}, not a "
            "vision-language processor; proguard trains vision-language policies (Qwen2.5-VL / Qwen3-VL class)"
        )
    if r.images.max_pixels or r.images.min_pixels:
        ip = processor.image_processor
        size = dict(getattr(ip, "size", None) or {})
        if "longest_edge" not in size:
            raise TrainError(
                f"images.max_pixels: the image processor {type(ip).__name__} has no pixel budget "
                "(size.longest_edge); leave images.max_pixels/min_pixels null for this model"
            )
        if r.images.max_pixels:
            size["longest_edge"] = r.images.max_pixels
        if r.images.min_pixels:
            size["shortest_edge"] = r.images.min_pixels
        if size["shortest_edge"] > size["longest_edge"]:
            raise TrainError(
                f"images: min_pixels {size['shortest_edge']} > max_pixels {size['longest_edge']} after merging with "
                "the checkpoint's image processor settings"
            )
        ip.size = size
    return processor


def prepare_policy_dir(model_path: str, processor, out_dir: Path) -> Path:
    """A checkpoint dir whose processor files carry the recipe's pixel budget; weights are symlinked.

    vLLM builds its own processor from the model directory, so a pixel budget set only in memory
    would give it different image-token counts than the trainer. Everything that loads the policy
    (the trainer, colocated vLLM, a ``trl vllm-serve`` pointed here) reads this one directory.
    """
    src = Path(model_path)
    if not src.is_dir():
        from huggingface_hub import snapshot_download

        src = Path(snapshot_download(model_path))
    def write(scratch: Path) -> None:
        processor.save_pretrained(scratch)
        written = {p.name for p in scratch.iterdir()}
        for item in src.iterdir():
            if item.name in _PROCESSOR_FILES or item.name in written or item.name.startswith("."):
                continue
            (scratch / item.name).symlink_to(item.resolve())
        (scratch / POLICY_SOURCE_FILE).write_text(f"{src.resolve()}\n")

    # replaced only if an earlier run wrote it (its marker, or the source file older versions wrote),
    # and never when it holds the source checkpoint itself
    replace_output_dir(out_dir, POLICY_DIR_KIND, write, overwrite=True, protect=[src],
                       legacy_markers=[POLICY_SOURCE_FILE])
    return out_dir

