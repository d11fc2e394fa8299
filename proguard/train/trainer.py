"""What the trainers use that needs no TRL import: the ``metrics.jsonl`` callback and a row's media.

The trainer classes live in ``grpo_trainer`` (``GuardGRPOTrainer``) and ``sft_trainer``
(``GuardSFTTrainer``), modules that import TRL and are imported only when a trainer is built; their
shared behaviour is in ``trainer_mixins``. ``guard_trainer_class`` returns the GRPO class for callers
that want it without importing TRL at their own import time.
"""

from __future__ import annotations

import json
from pathlib import Path


def row_media(row: dict, limits=None) -> dict:
    """A training row's media as the model needs them: PIL images, decoded video frames, 16 kHz audio."""
    from proguard.media import load_audio, load_video

    images = row.get("images") or ([row["image"]] if row.get("image") is not None else [])
    images = [im.convert("RGB") if hasattr(im, "convert") else im for im in images]
    video = row.get("video")
    videos = [load_video(video[0] if len(video) == 1 else video, limits).frames] if video else []
    audios = [load_audio(row["audio"], limits)] if row.get("audio") else []
    return {"images": images, "videos": videos, "audios": audios}


def install_media_hook(trainer, model) -> None:
    """Once per module: a forward pre-hook adding ``trainer._pending`` media to the model call."""
    module = trainer.accelerator.unwrap_model(model)
    if getattr(module, "_proguard_media_hook", None) is not None:
        return

    def hook(mod, args, kwargs):
        pending = trainer._pending
        if pending:
            kwargs = {**kwargs, **pending}
        return args, kwargs

    module._proguard_media_hook = module.register_forward_pre_hook(hook, with_kwargs=True)


def metrics_callback(path: Path):
    """A callback appending every log record, with its step, to ``path`` (JSON lines)."""
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        """Appends every log record, with its step, to a JSON-lines file (main process only); at the end
        every training-step row gets the same keys (see :func:`same_keys_on_every_step`)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}, default=float) + "\n")

        def on_train_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero and path.exists():
                same_keys_on_every_step(path)

    return MetricsFile()


def replace_progress(trainer, progress) -> None:
    """Put ``progress`` (a ``TrainerCallback``) in place of transformers' progress bar and log printer.

    The quick start prints one line per step; the default printer writes every log record as a dict
    (40 keys a GRPO step). ``None`` leaves the trainer as it is.
    """
    if progress is None:
        return
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(progress)


STEP_KEY = "loss"
"""A row with this key is a training-step log row (the run's closing summary row has ``train_loss``)."""


def same_keys_on_every_step(path: Path) -> None:
    """Give every training-step row of ``path`` the union of the step rows' keys, ``null`` where absent.

    A reward component is logged only on steps where it applies to some sample (``ood_similarity``
    on batches without an OOD task has no value), so raw rows differ from step to step; ``null``
    means "not applicable on that step" (never 0, which would read as a score). The closing summary
    row (``train_runtime``, ``train_loss``...) is left as it is.
    """
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keys: dict[str, None] = {}
    for row in rows:
        if STEP_KEY in row:
            keys.update(dict.fromkeys(row))
    out = [{k: row.get(k) for k in keys} if STEP_KEY in row else row for row in rows]
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text("".join(json.dumps(r) + "\n" for r in out), encoding="utf-8")
    scratch.replace(path)  # atomic: a reader never sees half a file

