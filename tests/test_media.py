"""Media decoding and validation: videos (file, frame directory, frame list) and audio (wav/flac/ogg/mp3)."""

import builtins

import numpy as np
import pytest

from proguard.media import (
    MediaError,
    MediaLimits,
    check_audio,
    check_video,
    load_audio,
    load_video,
    require_av,
    require_soundfile,
    sample_indices,
)
from proguard.media.synth import draw_frames, noise_burst, tone, write_audio, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("v") / "clip.mp4", draw_frames(8, 56, seed=1), fps=4)


def test_video_file_checks_and_loads(clip):
    info = check_video(clip)
    assert (info.frames, info.fps, info.width, info.height) == (8, 4.0, 56, 56)
    assert info.seconds == pytest.approx(2.0)
    video = load_video(clip, MediaLimits(video_fps=2.0))
    assert len(video.frames) == 4 and video.fps == pytest.approx(2.0)
    assert video.frames[0].size == (56, 56) and video.frames[0].mode == "RGB"
    # the moving shape: sampled frames differ
    assert np.abs(np.asarray(video.frames[0], float) - np.asarray(video.frames[-1], float)).sum() > 0


def test_frame_directory_and_list(tmp_path):
    frames = draw_frames(6, 32, seed=2)
    d = tmp_path / "frames"
    d.mkdir()
    for i, im in enumerate(frames):
        im.save(d / f"{i:03d}.png")
    info = check_video(d, MediaLimits(frame_dir_fps=3.0))
    assert (info.frames, info.seconds, info.width) == (6, 2.0, 32)
    listed = load_video(sorted(d.iterdir()), MediaLimits(frame_dir_fps=2.0, video_fps=2.0))
    assert len(listed.frames) == 6
    assert np.array_equal(np.asarray(listed.frames[3]), np.asarray(frames[3]))
    frames[5].resize((16, 16)).save(d / "005.png")
    with pytest.raises(MediaError, match="005.png: frame size 16x16 differs from the first frame's 32x32"):
        check_video(d)
    (d / "001.png").write_bytes(b"not a png")
    with pytest.raises(MediaError, match="unreadable frame"):
        check_video(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="must hold frame images"):
        check_video(empty)


def test_video_errors(tmp_path, clip):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(MediaError, match="undecodable video"):
        check_video(bad)
    with pytest.raises(MediaError, match="file not found"):
        check_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match=r"2\.0 s long, over media.max_video_seconds=1\.5"):
        check_video(clip, MediaLimits(max_video_seconds=1.5))
    sound = write_audio(tmp_path / "a.wav", tone(0.5))
    with pytest.raises(MediaError, match="no video stream|undecodable"):
        check_video(sound)


def test_sample_indices_limits():
    limits = MediaLimits(video_fps=2.0, max_video_frames=4)
    assert sample_indices(8, 4.0, limits) == [1, 3, 5, 7]
    assert sample_indices(100, 25.0, limits) == [12, 37, 62, 87]  # capped at max_video_frames, evenly spread
    assert sample_indices(1, 1.0, limits) == [0]
    assert sample_indices(3, 30.0, limits) == [0, 2]  # never below two frames (one temporal patch)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_audio_formats_decode_and_resample(tmp_path, suffix):
    path = write_audio(tmp_path / f"t{suffix}", tone(1.0, 22050, freq=300), 22050)
    info = check_audio(path)
    assert info.sample_rate == 22050 and info.channels == 1
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 16000) < 1200  # mp3/ogg pad a little
    # the tone survives resampling: the spectrum peaks near 300 Hz
    spectrum = np.abs(np.fft.rfft(samples[:16000] if len(samples) >= 16000 else samples))
    peak_hz = np.argmax(spectrum) * 16000 / (2 * (len(spectrum) - 1))
    assert abs(peak_hz - 300) < 10


def test_audio_errors(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    with pytest.raises(MediaError, match="undecodable audio"):
        check_audio(bad)
    long = write_audio(tmp_path / "long.wav", noise_burst(3.0))
    with pytest.raises(MediaError, match=r"3\.0 s long, over media.max_audio_seconds=2"):
        check_audio(long, MediaLimits(max_audio_seconds=2))
    low = write_audio(tmp_path / "low.wav", tone(0.5, 4000), 4000)
    with pytest.raises(MediaError, match=r"sample rate 4000 Hz outside"):
        load_audio(low)
    stereo = tmp_path / "stereo.wav"
    write_audio(stereo, np.stack([tone(0.5), -tone(0.5)], axis=1))
    assert check_audio(stereo).channels == 2
    assert np.abs(load_audio(stereo)).max() < 0.05  # the channels cancel: proof of the mono mix


def test_limits_are_validated():
    with pytest.raises(MediaError, match="media.video_fps: must be > 0"):
        MediaLimits(video_fps=0)
    with pytest.raises(MediaError, match="min_sample_rate 9000 is above"):
        MediaLimits(min_sample_rate=9000, max_sample_rate=8000)


def test_missing_decoder_libraries_name_the_install(monkeypatch):
    real_import = builtins.__import__

    def no_media(name, *args, **kwargs):
        if name in ("av", "soundfile"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_media)
    with pytest.raises(MediaError, match="pip install av"):
        require_av()
    with pytest.raises(MediaError, match="pip install soundfile"):
        require_soundfile()
