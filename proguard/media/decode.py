"""Video and audio decoding and validation: the one place proguard opens media files.

Video is a container file (mp4, webm, mkv, avi, gif...) decoded with PyAV (``av``: FFmpeg's
libraries bundled in a PyPI wheel, CPU-only, no system FFmpeg needed), or a directory / list of
frame images read with Pillow. Audio (wav, flac, ogg, mp3) is decoded with ``soundfile``
(libsndfile, also bundled in its wheel) and resampled with ``soxr`` (libsoxr's
high-quality resampler, a small wheel; importing scipy.signal alone takes ~4 s here).
docs/modalities.md says why these and not torchcodec / torchaudio / librosa.

Two levels, so loading a large sample set stays cheap:

* ``check_video`` / ``check_audio``: open the file, read its stream metadata, decode the first
  frame (or block) and check it against ``MediaLimits``; return a small info record.
* ``load_video`` / ``load_audio``: decode for the model: frames sampled at ``video_fps`` (at most
  ``max_video_frames``), audio mono float32 at ``sample_rate``.

Problems raise ``MediaError`` whose message is the *what* of a ``file: row N: field: what`` line;
the sample validator adds the rest. A missing decoder library is a ``MediaError`` naming the
``pip install`` that fixes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard.errors import UsageError

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
"""Frame images a video directory may hold (read in file-name order)."""

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".mp3")


class MediaError(UsageError):
    """A video or audio input that cannot be used; the message says what is wrong with it."""


@dataclass
class MediaLimits:
    """Limits on the video and audio a sample may carry (the recipe's ``data.media`` section)."""

    max_video_seconds: float = field(default=60.0, metadata={"help": "longest video accepted, in seconds"})
    max_video_frames: int = field(
        default=32, metadata={"help": "most frames given to the model per video (sampled evenly when more)"}
    )
    video_fps: float = field(default=2.0, metadata={"help": "frames per second sampled from a video for the model"})
    frame_dir_fps: float = field(
        default=2.0, metadata={"help": "the frame rate a directory or list of frame images is played at"}
    )
    max_audio_seconds: float = field(default=30.0, metadata={"help": "longest audio accepted, in seconds (Whisper's window)"})
    min_sample_rate: int = field(default=8000, metadata={"help": "lowest source sample rate accepted, in Hz"})
    max_sample_rate: int = field(default=48000, metadata={"help": "highest source sample rate accepted, in Hz"})
    sample_rate: int = field(
        default=16000, metadata={"help": "the rate audio is resampled to for the model (Whisper features: 16000)"}
    )

    def __post_init__(self) -> None:
        for name in ("max_video_seconds", "video_fps", "frame_dir_fps", "max_audio_seconds"):
            if not getattr(self, name) > 0:
                raise MediaError(f"media.{name}: must be > 0, got {getattr(self, name)!r}")
        for name in ("max_video_frames", "min_sample_rate", "max_sample_rate", "sample_rate"):
            if int(getattr(self, name)) < 1:
                raise MediaError(f"media.{name}: must be >= 1, got {getattr(self, name)!r}")
        if self.min_sample_rate > self.max_sample_rate:
            raise MediaError(f"media.min_sample_rate {self.min_sample_rate} is above media.max_sample_rate {self.max_sample_rate}")


@dataclass(frozen=True)
class VideoInfo:
    """What ``check_video`` found: the source's frame count, rate, duration and frame size."""

    frames: int
    fps: float
    seconds: float
    width: int
    height: int


@dataclass(frozen=True)
class AudioInfo:
    """What ``check_audio`` found: the source's sample rate, channels and duration."""

    sample_rate: int
    channels: int
    seconds: float


@dataclass(frozen=True)
class Video:
    """Decoded video for the model: RGB PIL frames sampled at ``fps`` frames per second of the source."""

    frames: list
    fps: float


# ---------------------------------------------------------------------------------------------
# Decoder libraries
# ---------------------------------------------------------------------------------------------
def require_av():
    """The ``av`` module (PyAV), or a ``MediaError`` saying how to install it."""
    try:
        import av
    except ImportError:
        raise MediaError(
            "video files need PyAV, which is not installed: pip install av (or pip install 'proguard[media]')"
        ) from None
    return av


def require_soundfile():
    """The ``soundfile`` module, or a ``MediaError`` saying how to install it."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the wheel's libsndfile failed to load
        raise MediaError(
            "audio files need soundfile (libsndfile), which is not installed or does not load: "
            "pip install soundfile (or pip install 'proguard[media]')"
        ) from None
    return soundfile


def require_soxr():
    """The ``soxr`` resampler module, or a ``MediaError`` saying how to install it."""
    try:
        import soxr
    except ImportError:
        raise MediaError("resampling audio needs soxr: pip install soxr (or pip install 'proguard[media]')") from None
    return soxr


# ---------------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------------
VideoSource = str | Path | Sequence[str | Path]


def frame_files(source: VideoSource) -> list[Path] | None:
    """The frame images of a directory / list video source, in order; ``None`` for a video file."""
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_dir():
            return None
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise MediaError(f"{p}: a video directory must hold frame images ({', '.join(FRAME_SUFFIXES)})")
        return files
    files = [Path(f) for f in source]
    if not files:
        raise MediaError("an empty list of frames is not a video")
    return files


def check_video(source: VideoSource, limits: MediaLimits | None = None) -> VideoInfo:
    """Open a video (file, frame directory or frame list), decode its first frame and check its limits."""
    limits = limits or MediaLimits()
    frames = frame_files(source)
    info = _check_frames(frames, limits) if frames is not None else _check_video_file(Path(source), limits)  # type: ignore[arg-type]
    if info.seconds > limits.max_video_seconds:
        raise MediaError(
            f"{_name(source)}: {info.seconds:.1f} s long, over media.max_video_seconds={limits.max_video_seconds:g}"
        )
    return info


def _check_frames(files: list[Path], limits: MediaLimits) -> VideoInfo:
    from PIL import Image

    size = None
    for f in files:
        if not f.is_file():
            raise MediaError(f"frame not found: {f}")
        try:
            with Image.open(f) as im:
                im.verify()
                this = im.size
        except Exception as exc:
            raise MediaError(f"{f}: unreadable frame ({type(exc).__name__}: {exc})") from None
        if size is None:
            size = this
        elif this != size:
            raise MediaError(f"{f}: frame size {this[0]}x{this[1]} differs from the first frame's {size[0]}x{size[1]}")
    assert size is not None
    fps = limits.frame_dir_fps
    return VideoInfo(frames=len(files), fps=fps, seconds=len(files) / fps, width=size[0], height=size[1])


def _check_video_file(path: Path, limits: MediaLimits) -> VideoInfo:
    av = require_av()
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
            first = next(container.decode(stream), None)
            if first is None:
                raise MediaError(f"{path}: no frame decodes")
            seconds = _stream_seconds(container, stream)
            frames = int(stream.frames or 0) or (round(seconds * fps) if fps else 0)
            width, height = first.width, first.height
    except MediaError:
        raise
    except Exception as exc:  # av.error.FFmpegError and friends: not a video we can read
        raise MediaError(f"{path}: undecodable video ({type(exc).__name__}: {exc})") from None
    if fps <= 0 or frames <= 0:
        raise MediaError(f"{path}: no frame rate or frame count in the stream")
    return VideoInfo(frames=frames, fps=fps, seconds=seconds or frames / fps, width=width, height=height)


def _stream_seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return 0.0


def sample_indices(n_frames: int, fps: float, limits: MediaLimits) -> list[int]:
    """Which source frames the model sees: one every ``fps / video_fps`` frames, at most ``max_video_frames``.

    At least two (Qwen's temporal patch is two frames; a one-frame clip is shown twice by the
    processor anyway) unless the source has fewer.
    """
    if n_frames <= 0:
        return []
    wanted = max(1, math.floor(n_frames * limits.video_fps / fps)) if fps > 0 else n_frames
    wanted = min(n_frames, limits.max_video_frames, max(wanted, 2))
    if wanted == n_frames:
        return list(range(n_frames))
    step = n_frames / wanted
    return [min(n_frames - 1, int(step * i + step / 2)) for i in range(wanted)]


def load_video(source: VideoSource, limits: MediaLimits | None = None) -> Video:
    """Decode a video for the model: RGB frames sampled by ``sample_indices``; checks limits first."""
    from PIL import Image

    limits = limits or MediaLimits()
    info = check_video(source, limits)
    files = frame_files(source)
    if files is not None:
        picks = sample_indices(len(files), info.fps, limits)
        frames = []
        for i in picks:
            with Image.open(files[i]) as im:
                frames.append(im.convert("RGB"))
    else:
        decoded = _decode_all(Path(source), limits)  # type: ignore[arg-type]
        picks = sample_indices(len(decoded), info.fps, limits)
        frames = [decoded[i] for i in picks]
    if not frames:
        raise MediaError(f"{_name(source)}: no frame decodes")
    shown_fps = info.fps * len(frames) / max(1, info.frames)
    return Video(frames=frames, fps=shown_fps)


def _decode_all(path: Path, limits: MediaLimits) -> list:
    av = require_av()
    cap = int(limits.max_video_seconds * 240) + 1  # no real clip within the limit has more frames
    out = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                out.append(frame.to_image())
                if len(out) > cap:
                    raise MediaError(f"{path}: more than {cap} frames")
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"{path}: undecodable video ({type(exc).__name__}: {exc})") from None
    return out


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------
def check_audio(path: str | Path, limits: MediaLimits | None = None) -> AudioInfo:
    """Open an audio file, decode its first block and check rate and duration against ``limits``."""
    limits = limits or MediaLimits()
    sf = require_soundfile()
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels, n = int(f.samplerate), int(f.channels), int(f.frames)
            block = f.read(min(n, 4096) if n > 0 else 4096, dtype="float32")
    except Exception as exc:  # soundfile.LibsndfileError / RuntimeError: not audio libsndfile reads
        raise MediaError(f"{path}: undecodable audio ({type(exc).__name__}: {exc})") from None
    if len(block) == 0:
        raise MediaError(f"{path}: holds no audio samples")
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise MediaError(
            f"{path}: sample rate {rate} Hz outside media.min_sample_rate..max_sample_rate "
            f"({limits.min_sample_rate}..{limits.max_sample_rate} Hz)"
        )
    # MP3 frame counts are estimates before a full decode; a bad count shows up in load_audio.
    seconds = n / rate if n > 0 else 0.0
    if seconds > limits.max_audio_seconds:
        raise MediaError(f"{path}: {seconds:.1f} s long, over media.max_audio_seconds={limits.max_audio_seconds:g}")
    return AudioInfo(sample_rate=rate, channels=channels, seconds=seconds)


def load_audio(path: str | Path, limits: MediaLimits | None = None):
    """Decode audio for the model: a mono float32 numpy array at ``limits.sample_rate``."""
    import numpy as np

    limits = limits or MediaLimits()
    check_audio(path, limits)
    sf = require_soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise MediaError(f"{path}: undecodable audio ({type(exc).__name__}: {exc})") from None
    if len(data) / rate > limits.max_audio_seconds:
        raise MediaError(
            f"{path}: {len(data) / rate:.1f} s long, over media.max_audio_seconds={limits.max_audio_seconds:g}"
        )
    mono = data.mean(axis=1)
    if rate != limits.sample_rate:
        mono = require_soxr().resample(mono, rate, limits.sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _name(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"frame list starting {next(iter(source), '?')}"
