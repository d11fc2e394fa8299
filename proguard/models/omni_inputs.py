"""Model inputs for Qwen-family omni policies: chat text plus images, videos and audio, per sample.

``OmniInputs`` turns rendered chat texts (one placeholder token per medium, as the chat template
writes it) and each sample's media into the tensors a Qwen2.5-Omni thinker (or a Qwen2.5-VL model,
for images and videos) takes: it expands every placeholder to exactly as many tokens as the
encoder makes features for that medium, so prompt and features align by construction.

Why not the checkpoint's ``Qwen2_5OmniProcessor``: every transformers video processor needs
torchvision, which has no CPU build for this project's CPU environment, and
``Qwen2_5OmniProcessor`` refuses to exist without one (see proguard/models/tiny_vlm.py for the same
constraint on Qwen2.5-VL). The pieces below are the processor's own: the tokenizer, the Qwen2-VL
image processor (its PIL backend), the Whisper feature extractor and, when it loads, the
checkpoint's video processor. Without one, frames are patched here with the same arithmetic as
``Qwen2VLVideoProcessor.patchify`` (resize each frame like the image processor, pad the frame
count to the temporal patch, permute into ``(t, h/m, w/m, m, m, C, tp, p, p)`` patches); a test
checks it against the image processor on a still clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

AUDIO_SAMPLE_RATE = 16000


def audio_tokens_for_frames(frames: int) -> int:
    """Audio placeholder tokens for ``frames`` mel frames: two stride-2 stages of the Qwen2.5-Omni audio tower."""
    after_conv = (frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


@dataclass
class MediaTokens:
    """The placeholder token strings and IDs of a checkpoint (``None`` where it has no such medium)."""

    image: str | None
    video: str | None
    audio: str | None
    image_id: int | None
    video_id: int | None
    audio_id: int | None


class OmniInputs:
    """Encode chat texts + per-sample media into Qwen2.5-Omni / Qwen2.5-VL model inputs."""

    def __init__(self, tokenizer, image_processor, feature_extractor=None, video_processor=None, *, fps: float = 2.0,
                 video_time_key: str = "video_second_per_grid"):
        # Seconds per temporal patch: Qwen2.5-Omni's forward calls it video_second_per_grid,
        # Qwen2.5-VL's second_per_grid_ts.
        self.video_time_key = video_time_key
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor
        self.video_processor = video_processor
        self.fps = fps
        tok = tokenizer

        def named(attr: str) -> tuple[str | None, int | None]:
            value = getattr(tok, attr, None)
            return (value, tok.convert_tokens_to_ids(value)) if value else (None, None)

        (img, img_id), (vid, vid_id), (aud, aud_id) = named("image_token"), named("video_token"), named("audio_token")
        self.tokens = MediaTokens(img, vid, aud, img_id, vid_id, aud_id)

    @property
    def merge_size(self) -> int:
        return int(getattr(self.image_processor, "merge_size", 2))

    # ----------------------------------------------------------------------------------------
    def __call__(
        self,
        texts: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        videos: Sequence[Sequence[list]] | None = None,
        audios: Sequence[Sequence[Any]] | None = None,
        *,
        padding_side: str = "left",
    ) -> dict:
        """Tensors for a batch: ``images[i]`` / ``videos[i]`` (lists of frames) / ``audios[i]`` (16 kHz arrays) are sample i's media."""
        import torch

        n = len(texts)
        ids, media = self.encode(texts, images, videos, audios)
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, x in enumerate(ids):
            sl = slice(width - len(x), width) if padding_side == "left" else slice(0, len(x))
            input_ids[i, sl] = torch.tensor(x, dtype=torch.long)
            attention[i, sl] = 1
        return {"input_ids": input_ids, "attention_mask": attention, **collate_media(media)}

    def encode(
        self,
        texts: Sequence[str],
        images: Sequence[Sequence[Any]] | None = None,
        videos: Sequence[Sequence[list]] | None = None,
        audios: Sequence[Sequence[Any]] | None = None,
    ) -> tuple[list[list[int]], list[dict]]:
        """Per sample: its token IDs (placeholders expanded) and its media tensors (``collate_media`` joins them)."""
        n = len(texts)
        images = images or [[] for _ in range(n)]
        videos = videos or [[] for _ in range(n)]
        audios = audios or [[] for _ in range(n)]
        ids, media = [], []
        for i in range(n):
            text, tensors = self._encode_one(i, texts[i], list(images[i] or []), list(videos[i] or []), list(audios[i] or []))
            ids.append(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            media.append(tensors)
        return ids, media

    def _encode_one(self, i: int, text: str, images: list, videos: list, audios: list) -> tuple[str, dict]:
        import torch

        out: dict[str, Any] = {}
        if images:
            enc = self.image_processor(images=images, return_tensors="pt")
            out["pixel_values"], out["image_grid_thw"] = enc["pixel_values"], enc["image_grid_thw"]
            text = self._expand(i, text, [int(g.prod()) // self.merge_size**2 for g in enc["image_grid_thw"]],
                                self.tokens.image, "image")
        elif self.tokens.image and self.tokens.image in text:
            raise ValueError(f"sample {i + 1}: the prompt has an image placeholder but no image was given")
        if videos:
            pixel, grids = self.encode_videos(videos)
            out["pixel_values_videos"], out["video_grid_thw"] = pixel, grids
            temporal = int(getattr(self.image_processor, "temporal_patch_size", 2))
            out[self.video_time_key] = torch.tensor([temporal / self.fps] * len(videos))
            text = self._expand(i, text, [int(g.prod()) // self.merge_size**2 for g in grids], self.tokens.video, "video")
        elif self.tokens.video and self.tokens.video in text:
            raise ValueError(f"sample {i + 1}: the prompt has a video placeholder but no video was given")
        if audios:
            if self.feature_extractor is None:
                raise ValueError("audio inputs need a feature extractor; this checkpoint has none (not an omni model)")
            feats = self.feature_extractor(
                audios, sampling_rate=AUDIO_SAMPLE_RATE, return_attention_mask=True, padding="longest",
                return_tensors="pt",
            )
            out["input_features"], out["feature_attention_mask"] = feats["input_features"], feats["attention_mask"]
            counts = [audio_tokens_for_frames(int(m.sum())) for m in feats["attention_mask"]]
            text = self._expand(i, text, counts, self.tokens.audio, "audio")
        elif self.tokens.audio and self.tokens.audio in text:
            raise ValueError(f"sample {i + 1}: the prompt has an audio placeholder but no audio was given")
        return text, out

    def _expand(self, i: int, text: str, counts: list[int], token: str | None, kind: str) -> str:
        if token is None:
            raise ValueError(f"this checkpoint's tokenizer has no {kind} token; it cannot take {kind} inputs")
        if text.count(token) != len(counts):
            raise ValueError(
                f"sample {i + 1}: the prompt has {text.count(token)} {kind} placeholder(s) but {len(counts)} {kind}(s) "
                "were given"
            )
        pieces = text.split(token)
        return pieces[0] + "".join(token * c + piece for c, piece in zip(counts, pieces[1:], strict=True))

    # ----------------------------------------------------------------------------------------
    def encode_videos(self, videos: Sequence[list]):
        """``(pixel_values_videos, video_grid_thw)`` for videos given as lists of RGB PIL frames."""
        if self.video_processor is not None:
            enc = self.video_processor(videos=[list(v) for v in videos], return_tensors="pt")
            return enc["pixel_values_videos"], enc["video_grid_thw"]
        return patch_videos(self.image_processor, videos)


def collate_media(media: Sequence[dict]) -> dict:
    """Join per-sample media tensors into one batch's model inputs (audio features padded to the longest)."""
    import torch

    out: dict[str, Any] = {}
    for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "video_second_per_grid",
                "second_per_grid_ts"):
        parts = [m[key] for m in media if key in m]
        if parts:
            out[key] = torch.cat(parts)
    feats = [m for m in media if "input_features" in m]
    if feats:
        width = max(m["input_features"].shape[-1] for m in feats)
        f = [torch.nn.functional.pad(m["input_features"], (0, width - m["input_features"].shape[-1])) for m in feats]
        a = [torch.nn.functional.pad(m["feature_attention_mask"], (0, width - m["feature_attention_mask"].shape[-1]))
             for m in feats]
        out["input_features"], out["feature_attention_mask"] = torch.cat(f), torch.cat(a)
    return out


def patch_videos(image_processor, videos: Sequence[list]):
    """Qwen2-VL video patches from PIL frames with the image processor's resize and normalisation (no torchvision)."""
    import numpy as np
    import torch

    patch = int(image_processor.patch_size)
    merge = int(image_processor.merge_size)
    temporal = int(image_processor.temporal_patch_size)
    all_patches, grids = [], []
    for frames in videos:
        # The image processor resizes and normalises each frame exactly as for an image; its own
        # patches tile a frame across the temporal patch, so they are rebuilt here from pixels.
        enc = image_processor(
            images=list(frames), return_tensors="np", do_resize=True, temporal_patch_size=1
        )
        grid = enc["image_grid_thw"][0]
        gh, gw = int(grid[1]), int(grid[2])
        c = 3
        per_frame = enc["pixel_values"].reshape(len(frames), gh // merge, gw // merge, merge, merge, c, 1, patch, patch)
        # back to (T, C, H, W) pixels
        pix = per_frame[:, :, :, :, :, :, 0].transpose(0, 5, 1, 3, 6, 2, 4, 7)  # T, C, gh/m, m, p, gw/m, m, p
        pix = pix.reshape(len(frames), c, gh * patch, gw * patch)
        if pad := -len(frames) % temporal:
            pix = np.concatenate([pix, np.repeat(pix[-1:], pad, axis=0)], axis=0)
        t = pix.shape[0] // temporal
        p = pix.reshape(t, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
        p = p.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        all_patches.append(p.reshape(t * gh * gw, c * temporal * patch * patch))
        grids.append([t, gh, gw])
    return torch.from_numpy(np.concatenate(all_patches).astype(np.float32)), torch.tensor(grids, dtype=torch.long)
