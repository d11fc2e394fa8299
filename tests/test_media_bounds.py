"""Media within bounds (issue 25): only sampled frames decoded, a pixel limit read from headers, frame
folders confined, audio finite over the whole clip, limits finite and in range."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from proguard.cli import main
from proguard.media import (
    MediaError,
    MediaLimits,
    check_audio,
    check_image,
    check_video,
    decode_frames,
    load_audio,
    load_video,
    sample_indices,
)
from proguard.media.synth import tone, write_audio

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "recipes" / "tiny" / "grpo_cpu.yaml")


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR: length, type, width, height...
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def numbered_clip(path: Path, n: int, fps: int, size: int = 32, gop: int = 10) -> Path:
    """A clip whose frame i is a flat colour encoding i (red: i mod 16, green: i div 16), keyframe every ``gop``."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.bit_rate = 400_000
        for i in range(n):
            pixels = np.zeros((size, size, 3), np.uint8)
            pixels[..., 0], pixels[..., 1] = (i % 16) * 16 + 8, (i // 16) * 16 + 8
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_number(image) -> int:
    r, g, _ = np.asarray(image, float).reshape(-1, 3).mean(axis=0)
    return int(round((g - 8) / 16)) * 16 + int(round((r - 8) / 16))


def test_only_the_sampled_frames_are_decoded_and_they_are_the_right_ones(tmp_path):
    clip = numbered_clip(tmp_path / "long.mp4", n=200, fps=10)
    limits = MediaLimits(video_fps=0.25, max_video_frames=32)
    picks = sample_indices(200, 10.0, limits)
    assert len(picks) == 5
    stats: dict = {}
    frames = decode_frames(clip, picks, 10.0, limits, stats)
    assert [frame_number(f) for f in frames] == picks
    assert stats["seeks"] >= 2 and stats["decoded"] < 200 // 2  # reached by seeking, not by decoding it all
    video = load_video(clip, limits)
    assert [frame_number(f) for f in video.frames] == picks


def test_close_picks_decode_on_without_seeking_back(tmp_path):
    clip = numbered_clip(tmp_path / "short.mp4", n=40, fps=10)
    limits = MediaLimits(video_fps=5.0, max_video_frames=32)
    picks = sample_indices(40, 10.0, limits)
    stats: dict = {}
    frames = decode_frames(clip, picks, 10.0, limits, stats)
    assert [frame_number(f) for f in frames] == picks
    assert stats["decoded"] <= 40 and stats["seeks"] == 1


def test_a_huge_picture_is_refused_from_its_header(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(12000, 12000))
    assert bomb.stat().st_size < 1000
    with pytest.raises(MediaError, match=r"12000x12000 = 144,000,000 pixels, over media.max_pixels"):
        check_image(bomb)
    assert check_image(bomb, MediaLimits(max_pixels=12000 * 12000)) == (12000, 12000)  # the limit is the limit
    code = main(["moderate", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                 "--max-retries", "0", "--timeout", "1", "--image", str(bomb)])
    err = capsys.readouterr().err
    assert code == 2 and "over media.max_pixels" in err and "Traceback" not in err
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000.png").write_bytes(png_declaring(12000, 12000))
    with pytest.raises(MediaError, match="over media.max_pixels"):
        check_video(frames)


def test_a_samples_file_with_a_huge_image_names_the_row(tmp_path):
    from proguard.data import DataError, load_samples

    (tmp_path / "bomb.png").write_bytes(png_declaring(20000, 20000))
    rows = tmp_path / "samples.jsonl"
    rows.write_text(json.dumps({"id": "a", "modality": "image", "image": "bomb.png", "request_label": "safe"}) + "\n")
    with pytest.raises(DataError, match=r"row 1: image: .*over media.max_pixels"):
        load_samples(rows, "default")


def test_a_frame_linked_from_outside_the_folder_is_refused(tmp_path):
    from PIL import Image

    from proguard.data import DataError, load_samples

    data = tmp_path / "data"
    frames = data / "clip"
    frames.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (16, 16), (i * 100, 0, 0)).save(frames / f"{i:03d}.png")
    outside = tmp_path / "secret.png"
    Image.new("RGB", (16, 16), (0, 0, 255)).save(outside)
    (frames / "002.png").symlink_to(outside)
    with pytest.raises(MediaError, match="002.png: a frame that resolves to .*secret.png, outside"):
        check_video(frames)
    with pytest.raises(MediaError, match="outside"):
        load_video(frames)
    rows = data / "samples.jsonl"
    rows.write_text(json.dumps({"id": "v", "modality": "video", "video": "clip", "request_label": "safe"}) + "\n")
    with pytest.raises(DataError, match="row 1: video: .*002.png.*outside"):
        load_samples(rows, "default")
    assert len(load_samples(rows, "default", allow_outside_data=True)) == 1  # allowed explicitly
    (frames / "002.png").unlink()
    (frames / "002.png").symlink_to(frames / "000.png")  # a link inside the folder is fine
    assert check_video(frames).frames == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_audio_with_a_non_finite_sample_anywhere_is_refused(tmp_path, bad):
    samples = tone(2.0)
    samples[20_000] = bad  # past the first decoded block
    path = write_audio(tmp_path / "x.wav", samples, subtype="FLOAT")
    with pytest.raises(MediaError, match=r"NaN or infinite sample at 1\.250 s"):
        check_audio(path)
    with pytest.raises(MediaError, match="NaN or infinite"):
        load_audio(path)
    samples[20_000] = 0.0
    assert check_audio(write_audio(tmp_path / "ok.wav", samples, subtype="FLOAT")).seconds == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"video_fps": 1e308}, "video_fps: must be > 0 and <= 240"),
    ({"video_fps": float("nan")}, "video_fps: must be a finite number"),
    ({"max_video_seconds": float("inf")}, "max_video_seconds: must be a finite number"),
    ({"max_video_frames": 0}, "max_video_frames: must be in 1..4096"),
    ({"max_video_frames": 2.5}, "max_video_frames: must be an integer"),
    ({"max_pixels": 0}, "max_pixels: must be in"),
    ({"sample_rate": 10**12}, "sample_rate: must be in"),
])
def test_media_limits_are_finite_and_in_range(kwargs, match):
    with pytest.raises(MediaError, match=match):
        MediaLimits(**kwargs)


@pytest.mark.parametrize("mode", ["--check", "--dry-run"])
def test_a_recipe_with_an_absurd_video_fps_is_one_line(mode, capsys):
    try:
        code = main(["train", TINY, "data.media.video_fps=1e308", mode])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err[-2000:]
    assert "video_fps" in err and len([line for line in err.splitlines() if "error" in line]) == 1
