"""``proguard moderate --video / --audio`` and ``Guard`` with video and audio, on the tiny omni thinker."""

from __future__ import annotations

import json

import pytest

from proguard.bench.backends import Media, OpenAIBackend
from proguard.bench.guard import Guard, input_modality
from proguard.cli import main
from proguard.data import BUNDLED_SAMPLES
from proguard.models.tiny_omni import tiny_omni_path

SAMPLE = BUNDLED_SAMPLES.parent


def test_input_modality_for_video_and_audio():
    assert input_modality(None, None, None, video="v.mp4") == "video"
    assert input_modality("what is this?", None, None, audio="a.ogg") == "text_audio"
    with pytest.raises(ValueError, match="one medium per input, got image and video"):
        input_modality(None, None, object(), video="v.mp4")


class Recorder:
    """Answers every prompt with a fixed safe verdict; records what it was given."""

    settings = None

    def __init__(self):
        self.seen = []

    def describe(self):
        return {"backend": "recorder"}

    def generate(self, batch):
        from proguard.protocol import format_answer

        self.seen.extend(batch)
        out = []
        for messages, medium in batch:
            modality = "video" if isinstance(medium, Media) and medium.video is not None else "audio"
            out.append(format_answer(modality, "safe", None, None, "fine"))
        return out


def test_guard_decodes_video_and_audio_for_the_backend():
    backend = Recorder()
    guard = Guard(backend, "default")
    v = guard.moderate(video=str(SAMPLE / "video" / "sun.mp4"))
    a = guard.moderate(audio=str(SAMPLE / "audio" / "chime.ogg"))
    assert v.ok and v.modality == "video" and a.ok and a.modality == "audio"
    (m1, video), (m2, audio) = backend.seen
    assert m1[1]["content"][0] == {"type": "video"} and len(video.video) >= 2
    assert m2[1]["content"][0] == {"type": "audio"} and audio.audio.ndim == 1 and len(audio.audio) > 8000
    with pytest.raises(ValueError, match="input 1: .*samples.jsonl: undecodable audio"):
        guard.moderate(audio=str(SAMPLE / "samples.jsonl"))


def test_openai_backend_refuses_media():
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "guard")
    prompt = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "x"}]}]
    with pytest.raises(ValueError, match="does not take video or audio here; use --backend transformers"):
        backend.generate([(prompt, Media(audio=[0.0]))])


@pytest.mark.parametrize("flag, file", [("--video", "video/knife.mp4"), ("--audio", "audio/speech-03.ogg")])
def test_moderate_cli_with_video_and_audio(flag, file, capsys):
    rc = main(["moderate", "--model", str(tiny_omni_path()), "--max-new-tokens", "4", "--raw", flag, str(SAMPLE / file)])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and out["ok"] is False  # random weights: a malformed answer, reported, never a crash
    assert isinstance(out["completion"], str)
