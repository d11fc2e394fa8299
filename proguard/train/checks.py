"""Start-up checks before any weights load: image-, video- and audio-token alignment and prompt lengths.

Silent prompt/image misalignment is the most reported failure of VLM GRPO in TRL, so the first
image row is tokenised both ways TRL does and compared with what the policy's vision tower makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from proguard.train.dataset import _prompts_and_images, row_names
from proguard.train.errors import TrainError
from proguard.train.recipe import Recipe


@dataclass(frozen=True)
class Alignment:
    """The image-token check on one sample prompt."""

    row: int
    prompt_tokens: int
    forward_tokens: int
    vision_features: int


def check_image_token_alignment(processor, model_config, ds) -> Alignment | None:
    """Assert the prompt's image tokens equal the vision features the policy makes for its image.

    Tokenizes the first image row twice, as TRL does (``apply_chat_template`` for generation, the
    processor on the rendered text for the training forward pass), and compares both image-token
    counts with ``prod(image_grid_thw) / merge_size**2`` computed with the *policy's* merge size and
    image-token ID (Idefics3/SmolVLM policies: real images x ``(side / patch_size)^2 / scale_factor^2``). ``None`` when the data has no image rows. Raises ``TrainError`` on a mismatch:
    silent prompt/image misalignment is the most reported failure of VLM GRPO in TRL.
    """
    import torch
    from trl.data_utils import prepare_multimodal_messages

    from proguard.models.smolvlm import is_smolvlm, vision_features

    index = next((i for i, (_, cell) in enumerate(_prompts_and_images(ds)) if cell is not None), None)
    if index is None:
        return None
    row = ds[index]
    messages = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    gen = processor.apply_chat_template(
        conversation=[messages], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    text = processor.apply_chat_template([messages], add_generation_prompt=True, tokenize=False)
    fwd = processor(images=[[row["image"]]], text=text, padding=True, return_tensors="pt")

    image_token_id = getattr(model_config, "image_token_id", None)
    vision = getattr(model_config, "vision_config", None)
    merge = getattr(vision, "spatial_merge_size", None)
    grid = fwd.get("image_grid_thw")
    smol = is_smolvlm(model_config)  # Idefics3/SmolVLM: no grid; padded per-sample images, pixel-shuffle connector
    if smol:
        merge, grid = 1, torch.tensor([[1, 1, vision_features(model_config, fwd["pixel_values"])]])
    if image_token_id is None or merge is None or grid is None:
        raise TrainError(
            f"cannot check image-token alignment for {type(model_config).__name__}: it needs image_token_id, "
            "vision_config.spatial_merge_size and the processor's image_grid_thw (Qwen2-VL family). "
            "proguard trains Qwen2.5-VL / Qwen3-VL class policies."
        )
    tokenizer = processor.tokenizer
    proc_token = getattr(processor, "image_token", None)
    if proc_token is not None and tokenizer.convert_tokens_to_ids(proc_token) != image_token_id:
        raise TrainError(
            f"image-token mismatch: the processor marks images with {proc_token!r} "
            f"(id {tokenizer.convert_tokens_to_ids(proc_token)}) but the policy's image_token_id is {image_token_id}; "
            "the processor and the model come from different checkpoints"
        )
    ip_merge = merge if smol else getattr(processor.image_processor, "merge_size", merge)
    features = int(sum(int(math.prod(g.tolist())) for g in grid)) // int(merge) ** 2
    n_gen = int((gen["input_ids"] == image_token_id).sum())
    n_fwd = int((fwd["input_ids"] == image_token_id).sum())
    if ip_merge != merge or not n_gen == n_fwd == features:
        how = (f"pixel_values {list(fwd['pixel_values'].shape)}, patch_size {model_config.vision_config.patch_size}, "
               f"scale_factor {model_config.scale_factor}" if smol else
               f"image_grid_thw {grid.tolist()} / spatial_merge_size {merge}^2; image processor merge_size {ip_merge}")
        raise TrainError(
            f"image-token misalignment on training row {index + 1}: the generation prompt has {n_gen} image tokens, "
            f"the training forward pass {n_fwd}, and the policy's vision tower makes {features} features "
            f"({how}). "
            "Check that the chat template renders one image placeholder per image and that the processor belongs "
            "to the model checkpoint."
        )
    return Alignment(index, n_gen, n_fwd, features)


def prompt_lengths(processor, ds, batch_size: int = 256) -> list[int]:
    """Tokens per training prompt as the policy sees it: text tokens plus each image's expanded tokens."""
    tokenizer = getattr(processor, "tokenizer", processor)  # a text-only policy's processor is its tokenizer
    image_token = getattr(processor, "image_token", None)
    image_token_id = tokenizer.convert_tokens_to_ids(image_token) if image_token else None
    lengths: list[int] = []
    prompts: list = []
    images: list = []

    def flush() -> None:
        texts = processor.apply_chat_template(prompts, add_generation_prompt=True, tokenize=False)
        for ids, cell in zip(tokenizer(texts, add_special_tokens=False)["input_ids"], images, strict=True):
            n = len(ids)
            if cell is not None and image_token_id is not None:
                n += _image_tokens(processor, cell) - ids.count(image_token_id)
            lengths.append(n)
        prompts.clear()
        images.clear()

    for prompt, cell in _prompts_and_images(ds):
        prompts.append(prompt)
        images.append(cell)
        if len(prompts) == batch_size:
            flush()
    if prompts:
        flush()
    return lengths


def _image_tokens(processor, cell: dict) -> int:
    """Image tokens the processor expands one image to, from its size (no pixel processing)."""
    import io

    from PIL import Image

    ip = processor.image_processor
    merge = int(getattr(ip, "merge_size", 1))
    source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"]
    with Image.open(source) as im:
        if hasattr(ip, "get_number_of_image_patches"):
            patches = ip.get_number_of_image_patches(im.height, im.width, {})
            if isinstance(patches, int):
                return patches // merge**2
            # Idefics3/SmolVLM: (patches, rows, cols). The placeholder becomes the processor's own replacement
            # string (image tokens, wrapper and row/column tokens), tokenized here: _get_num_multimodal_tokens
            # counted the wrapper tokens in transformers 5.24 and no longer does in 5.25
            _, rows, cols = patches
            text = processor.replace_image_token({"rows": [[rows]], "cols": [[cols]]}, 0)
            return len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
        grid = ip(images=[im.convert("RGB")], return_tensors="pt")["image_grid_thw"]
    return int(grid.prod(-1).sum()) // merge**2


def enforce_prompt_lengths(ds, lengths: list[int], r: Recipe, origin: str = "training data"):
    """Rows whose prompt exceeds ``lengths.max_prompt_length``: an error, or dropped and reported."""
    limit = r.lengths.max_prompt_length
    over = [i for i, n in enumerate(lengths) if n > limit]
    if not over:
        return ds
    names = row_names(ds)
    shown = ", ".join(f"{names[i]}: {lengths[i]} tokens" for i in over[:5])
    msg = (
        f"{origin}: {len(over)} of {len(ds)} prompts are longer than lengths.max_prompt_length={limit}: {shown}"
        + (" ..." if len(over) > 5 else "")
    )
    if r.lengths.overlong_prompts == "error":
        raise TrainError(
            msg + ". Raise lengths.max_prompt_length, lower images.max_pixels, shorten the prompt "
            "(data.prompt.descriptions=false), or set lengths.overlong_prompts=drop"
        )
    print(f"[proguard] dropping {msg}", flush=True)
    keep = sorted(set(range(len(ds))) - set(over))
    if not keep:
        raise TrainError(msg + "; nothing left to train on")
    return ds.select(keep)



@dataclass(frozen=True)
class MediaAlignment:
    """The placeholder check for one medium: the row checked and both counts (equal when it passed)."""

    medium: str
    row: int
    prompt_tokens: int
    features: int


_MEDIA_TOKEN_IDS = {"image": "image_token_id", "video": "video_token_id", "audio": "audio_token_id"}


def check_media_token_alignment(omni_inputs, model_config, ds) -> list[MediaAlignment]:
    """For the first row of each medium (image, video, audio): placeholder tokens == encoder features.

    The row is encoded as training encodes it (``OmniInputs``), and the expanded prompt's placeholder
    count is compared with what the policy's towers make from the same tensors: ``prod(grid_thw) /
    spatial_merge_size**2`` for images and videos (the policy's merge size), and the Qwen2.5-Omni
    audio tower's two stride-2 stages over the valid mel frames for audio. The placeholder token IDs
    must also be the model's (``image_token_id`` / ``video_token_id`` / ``audio_token_id``).
    Raises ``TrainError`` on any difference: a silent misalignment trains on garbage.
    """
    from proguard.models.omni_inputs import audio_tokens_for_frames
    from proguard.train.trainer import row_media

    config = getattr(model_config, "thinker_config", model_config)
    out: list[MediaAlignment] = []
    columns = [c for c in ("video", "audio") if c in ds.column_names]
    modality = ds["modality"]
    for medium in ("image", "video", "audio"):
        rows = [i for i, m in enumerate(modality) if medium in m.split("_")]
        if not rows:
            continue
        i = rows[0]
        if medium != "image" and medium not in columns:
            raise TrainError(f"training row {i + 1} is a {modality[i]} sample but the data has no {medium} column")
        row = ds[i]
        media = row_media(row)
        text = omni_inputs.tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        try:
            ids, tensors = omni_inputs.encode([text], [media["images"]], [media["videos"]], [media["audios"]])
        except ValueError as exc:  # placeholders rendered != media given
            raise TrainError(f"{medium}-token misalignment on training row {i + 1} ({modality[i]}): {exc}") from None
        token_id = getattr(config, _MEDIA_TOKEN_IDS[medium], None)
        if token_id is None:
            token_id = getattr(config, _MEDIA_TOKEN_IDS[medium].replace("_id", "_index"), None)
        own = getattr(omni_inputs.tokens, f"{medium}_id")
        if token_id is None or own != token_id:
            raise TrainError(
                f"{medium}-token mismatch on training row {i + 1}: the processor marks {medium} with token id {own}, "
                f"the policy expects {token_id}; the processor and the model come from different checkpoints"
            )
        t = tensors[0]
        if medium == "audio":
            features = sum(audio_tokens_for_frames(int(m.sum())) for m in t["feature_attention_mask"])
            how = f"{int(t['feature_attention_mask'].sum())} mel frames through two stride-2 stages"
        else:
            vision = getattr(config, "vision_config", None)
            merge = int(getattr(vision, "spatial_merge_size", 0) or 0)
            grid = t["image_grid_thw" if medium == "image" else "video_grid_thw"]
            if not merge:
                raise TrainError(f"cannot check {medium}-token alignment: the policy config has no vision_config.spatial_merge_size")
            features = int(sum(int(math.prod(g.tolist())) for g in grid)) // merge**2
            how = f"grid_thw {grid.tolist()} / spatial_merge_size {merge}^2"
        n_tokens = ids[0].count(token_id)
        if n_tokens != features:
            raise TrainError(
                f"{medium}-token misalignment on training row {i + 1} ({modality[i]}): the prompt has {n_tokens} "
                f"{medium} tokens but the policy's encoder makes {features} features ({how}). Check that the "
                "chat template renders one placeholder per medium and that the processor belongs to the checkpoint."
            )
        out.append(MediaAlignment(medium, i, n_tokens, features))
    return out


def media_prompt_lengths(omni_inputs, ds) -> list[int]:
    """Tokens per training prompt with every medium expanded, as ``OmniInputs`` encodes it (decodes the media)."""
    from proguard.train.trainer import row_media

    lengths = []
    for i in range(len(ds)):
        row = ds[i]
        media = row_media(row)
        text = omni_inputs.tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        ids, _ = omni_inputs.encode([text], [media["images"]], [media["videos"]], [media["audios"]])
        lengths.append(len(ids[0]))
    return lengths
