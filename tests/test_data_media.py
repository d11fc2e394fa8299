"""Sample schema for video and audio: the four new modalities load, and bad media names file, row and field."""

import json
from pathlib import Path

import pytest

from proguard.data import DataError, load_samples, sample_problems
from proguard.media import MediaLimits
from proguard.media.synth import draw_frames, noise_burst, tone, write_audio, write_clip
from taxonomy import load_taxonomy

TAX = load_taxonomy("default")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def media(tmp_path):
    write_clip(tmp_path / "clip.mp4", draw_frames(8, 56, seed=3), fps=4)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, im in enumerate(draw_frames(4, 32, seed=4)):
        im.save(frames / f"{i:02d}.png")
    write_audio(tmp_path / "speech.flac", tone(1.0, 22050), 22050)
    write_audio(tmp_path / "bang.wav", noise_burst(0.5))
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 not a video" * 20)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not audio")
    write_audio(tmp_path / "low.wav", tone(0.5, 4000), 4000)
    return tmp_path


def good_rows():
    return [
        {"id": "v1", "modality": "video", "video": "clip.mp4", "request_label": "unsafe", "category": "C1"},
        {"id": "v2", "modality": "video", "video": "frames", "request_label": "safe"},
        {"id": "v3", "modality": "text_video", "video": ["frames/00.png", "frames/01.png"], "request": "what is this?",
         "response": "a ball", "request_label": "safe", "response_label": "safe"},
        {"id": "a1", "modality": "audio", "audio": "speech.flac", "request_label": "safe"},
        {"id": "a2", "modality": "text_audio", "audio": "bang.wav", "request": "what was that noise?",
         "request_label": "unsafe", "category": "C1"},
    ]


def test_video_and_audio_samples_load(media):
    ds = load_samples(write_jsonl(media / "s.jsonl", good_rows()), TAX)
    assert ds["modality"] == ["video", "video", "text_video", "audio", "text_audio"]
    assert ds[0]["video"] == [str((media / "clip.mp4").resolve())] and ds[0]["audio"] is None
    assert ds[1]["video"] == [str((media / "frames").resolve())]
    assert ds[2]["video"] == [str((media / "frames" / f"0{i}.png").resolve()) for i in range(2)]
    assert ds[3]["audio"] == str((media / "speech.flac").resolve()) and ds[3]["video"] is None
    assert ds[4]["response_label"] is None and ds[4]["category"] == TAX.find("C1").id
    assert all(r["image"] is None for r in ds)


BAD = [
    ({"id": "x", "modality": "video", "video": "broken.mp4", "request_label": "safe"}, "video", "undecodable video"),
    ({"id": "x", "modality": "video", "video": "missing.mp4", "request_label": "safe"}, "video", "file not found"),
    ({"id": "x", "modality": "video", "request_label": "safe"}, "video", "required for video samples"),
    ({"id": "x", "modality": "video", "video": "clip.mp4", "request": "hi", "request_label": "safe"}, "modality",
     "video samples carry no request or response text (use text_video)"),
    ({"id": "x", "modality": "video", "video": "clip.mp4", "audio": "bang.wav", "request_label": "safe"}, "audio",
     "video samples carry no audio"),
    ({"id": "x", "modality": "text", "request": "hi", "audio": "bang.wav", "request_label": "safe"}, "audio",
     "text samples carry no audio (use text_audio)"),
    ({"id": "x", "modality": "audio", "audio": "broken.wav", "request_label": "safe"}, "audio", "undecodable audio"),
    ({"id": "x", "modality": "audio", "audio": "low.wav", "request_label": "safe"}, "audio", "sample rate 4000 Hz outside"),
    ({"id": "x", "modality": "audio", "audio": "clip.mp4", "request_label": "safe"}, "audio", "undecodable audio"),
    ({"id": "x", "modality": "audio", "audio": 3, "request_label": "safe"}, "audio", "must be a path"),
    ({"id": "x", "modality": "text_audio", "audio": "bang.wav", "request_label": "safe"}, "request",
     "required for text_audio samples"),
    ({"id": "x", "modality": "audio", "image": "bang.wav", "request_label": "safe"}, "image", "audio samples carry no image"),
]


@pytest.mark.parametrize("row, field, what", BAD, ids=[f"{i:02d}-{f}" for i, (_, f, _) in enumerate(BAD)])
def test_bad_media_rows_name_file_row_and_field(media, row, field, what):
    path = write_jsonl(media / "bad.jsonl", [good_rows()[3], row])
    with pytest.raises(DataError) as err:
        load_samples(path, TAX)
    assert f"{path}: row 2: {field}: " in str(err.value)
    assert what in str(err.value)


def test_limits_reject_long_media(media):
    path = write_jsonl(media / "s.jsonl", good_rows())
    with pytest.raises(DataError) as err:
        load_samples(path, TAX, media_limits=MediaLimits(max_video_seconds=1.0, max_audio_seconds=0.75))
    msg = str(err.value)
    assert f"{path}: row 1: video: " in msg and "over media.max_video_seconds=1" in msg
    assert f"{path}: row 2: video: " in msg  # the 4-frame directory plays 2 s at the default 2 fps
    assert f"{path}: row 4: audio: " in msg and "over media.max_audio_seconds=0.75" in msg
    assert "row 5" not in msg  # the 0.5 s bang is within the limit


def test_media_outside_the_data_folder_is_refused(media, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    outside = write_audio(other / "x.wav", tone(0.2))
    path = write_jsonl(media / "s.jsonl", [{"id": "a", "modality": "audio", "audio": str(outside), "request_label": "safe"}])
    with pytest.raises(DataError, match="row 1: audio: .* outside the data file's folder"):
        load_samples(path, TAX)
    assert load_samples(path, TAX, allow_outside_data=True)["audio"] == [str(outside.resolve())]


def test_sample_rules_cover_every_medium():
    assert sample_problems("audio", "safe", None, None, has_audio=True, has_image=False, has_video=False) == []
    assert sample_problems("text_video", "safe", None, None, has_request=True, has_video=False) == [
        "video: required for text_video samples"
    ]
    assert sample_problems("audio", "safe", "safe", None) == ["response_label: audio samples have no response label"]
