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

Bounds: a video file is never decoded whole: ``load_video`` seeks to each sampled frame and converts
only those (memory grows with ``max_video_frames``, not the clip's length; benchmarks/bench_media.py).
Every image and frame is checked against ``max_pixels`` from its header before any pixel is decoded.
The frames of a frame folder are resolved and must stay inside it (or the data folder), so a link in
it cannot pull in another file. Audio must be finite (no NaN/Inf sample) over the whole clip. The
limits themselves are checked finite and in range when built (a recipe's ``data.media``).

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
    max_pixels: int = field(
        default=40_000_000,
        metadata={"help": "most pixels (width x height) of an image or video frame, checked from its header before "
                  "decoding (8K UHD is 33.2 million)"},
    )

    def __post_init__(self) -> None:
        for name, (low, high) in FLOAT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise MediaError(f"media.{name}: must be a finite number, got {value!r}")
            if not low < value <= high:
                raise MediaError(f"media.{name}: must be > {low:g} and <= {high:g}, got {value!r}")
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MediaError(f"media.{name}: must be an integer, got {value!r}")
            if not low <= value <= high:
                raise MediaError(f"media.{name}: must be in {low}..{high}, got {value!r}")
        if self.min_sample_rate > self.max_sample_rate:
            raise MediaError(f"media.min_sample_rate {self.min_sample_rate} is above media.max_sample_rate {self.max_sample_rate}")


FLOAT_RANGES = {
    "max_video_seconds": (0.0, 24 * 3600.0),
    "video_fps": (0.0, 240.0),
    "frame_dir_fps": (0.0, 240.0),
    "max_audio_seconds": (0.0, 24 * 3600.0),
}
"""``(exclusive low, inclusive high)`` of each float limit: beyond them a value is a typo, not a choice."""
INT_RANGES = {
    "max_video_frames": (1, 4096),
    "min_sample_rate": (1, 768_000),
    "max_sample_rate": (1, 768_000),
    "sample_rate": (1000, 768_000),
    "max_pixels": (1, 1 << 31),
}
"""``(low, high)`` inclusive of each integer limit."""


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
Confine = bool | str | Path
"""Where the frames of a frame folder must resolve: ``True`` inside the folder itself, a path inside
that folder (the data file's folder), ``False`` anywhere (``--allow-outside-data``)."""
SEEK_GAP_SECONDS = 1.0
"""Sampled frames further apart than this are reached by seeking; closer ones by decoding on."""


def check_pixels(width: int, height: int, limits: MediaLimits, what: str) -> None:
    """``MediaError`` when a ``width`` x ``height`` picture is over ``limits.max_pixels`` (or has no size)."""
    if width < 1 or height < 1:
        raise MediaError(f"{what}: has no size ({width}x{height})")
    if width * height > limits.max_pixels:
        raise MediaError(f"{what}: {width}x{height} = {width * height:,} pixels, over media.max_pixels="
                         f"{limits.max_pixels:,} (checked before decoding)")


def _open_image(source: Any, limits: MediaLimits, what: str):
    """``Image.open`` (header only) with the size checked against ``max_pixels``; Pillow's own bomb
    warning is ours to give, and its bomb error (past twice its 178M default) becomes the same line."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise MediaError(f"{what}: {exc.args[0].split(',')[0]}, over media.max_pixels={limits.max_pixels:,} "
                         "(checked before decoding)") from None
    try:
        check_pixels(im.size[0], im.size[1], limits, what)
    except MediaError:
        im.close()
        raise
    return im


def check_image(
    source: Any, limits: MediaLimits | None = None, what: str | None = None, noun: str = "image"
) -> tuple[int, int]:
    """Open an image (path or file object), check its header size against ``max_pixels``, then verify it.

    Returns ``(width, height)``. Nothing is decoded before the size check: a tiny file declaring a huge
    picture (a decompression bomb) is refused at its header.
    """
    limits = limits or MediaLimits()
    what = what or str(source if isinstance(source, (str, Path)) else "image")
    try:
        with _open_image(source, limits, what) as im:
            size = im.size
            im.verify()
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"{what}: unreadable {noun} ({type(exc).__name__}: {exc})") from None
    return size


def open_image(source: Any, limits: MediaLimits | None = None, what: str | None = None):
    """An RGB PIL image from a path or file object, its size checked against ``max_pixels`` before decoding."""
    limits = limits or MediaLimits()
    what = what or str(source if isinstance(source, (str, Path)) else "image")
    try:
        with _open_image(source, limits, what) as im:
            return im.convert("RGB")
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"{what}: unreadable image ({type(exc).__name__}: {exc})") from None


def frame_files(source: VideoSource, confine: Confine = True) -> list[Path] | None:
    """The frame images of a directory / list video source, in order; ``None`` for a video file.

    The frames of a directory are resolved (links followed) and must stay inside ``confine`` (see
    ``Confine``): a link in a frame folder cannot pull in a file from elsewhere.
    """
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.is_dir():
            return None
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise MediaError(f"{p}: a video directory must hold frame images ({', '.join(FRAME_SUFFIXES)})")
        if confine is not False:
            root = (p if confine is True else Path(confine)).resolve()  # type: ignore[arg-type]
            for f in files:
                resolved = f.resolve()
                if not resolved.is_relative_to(root):
                    raise MediaError(f"{f}: a frame that resolves to {resolved}, outside {root}; frames must be files "
                                     "inside the folder (or allow media outside the data folder explicitly)")
        return files
    files = [Path(f) for f in source]
    if not files:
        raise MediaError("an empty list of frames is not a video")
    return files


def check_video(source: VideoSource, limits: MediaLimits | None = None, confine: Confine = True) -> VideoInfo:
    """Open a video (file, frame directory or frame list), decode its first frame and check its limits."""
    limits = limits or MediaLimits()
    frames = frame_files(source, confine)
    info = _check_frames(frames, limits) if frames is not None else _check_video_file(Path(source), limits)  # type: ignore[arg-type]
    if info.seconds > limits.max_video_seconds:
        raise MediaError(
            f"{_name(source)}: {info.seconds:.1f} s long, over media.max_video_seconds={limits.max_video_seconds:g}"
        )
    return info


def _check_frames(files: list[Path], limits: MediaLimits) -> VideoInfo:
    size = None
    for f in files:
        if not f.is_file():
            raise MediaError(f"frame not found: {f}")
        this = check_image(f, limits, f"{f}", noun="frame")
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
            # the stream header's size, before a frame is decoded
            check_pixels(int(stream.codec_context.width or 0), int(stream.codec_context.height or 0), limits, str(path))
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
            first = next(container.decode(stream), None)
            if first is None:
                raise MediaError(f"{path}: no frame decodes")
            check_pixels(first.width, first.height, limits, str(path))
            seconds = _stream_seconds(container, stream)
            frames = int(stream.frames or 0) or (round(seconds * fps) if fps else 0)
            width, height = first.width, first.height
    except MediaError:
        raise
    except Exception as exc:  # av.error.FFmpegError and friends: not a video we can read
        raise MediaError(f"{path}: undecodable video ({type(exc).__name__}: {exc})") from None
    if not (math.isfinite(fps) and fps > 0) or frames <= 0 or not math.isfinite(seconds):
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
    if fps > 0:
        wanted = n_frames * limits.video_fps / fps
        wanted = n_frames if not math.isfinite(wanted) else max(1, math.floor(min(wanted, n_frames)))
    else:
        wanted = n_frames
    wanted = min(n_frames, limits.max_video_frames, max(wanted, 2))
    if wanted == n_frames:
        return list(range(n_frames))
    step = n_frames / wanted
    return [min(n_frames - 1, int(step * i + step / 2)) for i in range(wanted)]


def load_video(source: VideoSource, limits: MediaLimits | None = None, confine: Confine = True) -> Video:
    """Decode a video for the model: RGB frames sampled by ``sample_indices``; checks limits first.

    A video file is not decoded whole: each sampled frame is reached by seeking (or by decoding on,
    when it is close to the last one), and only sampled frames are converted to images.
    """
    limits = limits or MediaLimits()
    info = check_video(source, limits, confine)
    files = frame_files(source, confine)
    if files is not None:
        picks = sample_indices(len(files), info.fps, limits)
        frames = [open_image(files[i], limits, str(files[i])) for i in picks]
    else:
        picks = sample_indices(info.frames, info.fps, limits)
        frames = decode_frames(Path(source), picks, info.fps, limits)  # type: ignore[arg-type]
    if not frames:
        raise MediaError(f"{_name(source)}: no frame decodes")
    shown_fps = info.fps * len(frames) / max(1, info.frames)
    return Video(frames=frames, fps=shown_fps)


def decode_frames(
    path: Path, picks: Sequence[int], fps: float, limits: MediaLimits, stats: dict | None = None
) -> list:
    """RGB images of the frames numbered ``picks`` (ascending) of a video file at ``fps``.

    Seeks to each pick's timestamp (the keyframe before it, then decodes on to it); a stream without
    timestamps or that cannot seek is decoded in order instead, converting only the picked frames.
    Either way at most the picked frames are held, and at most ``max_video_seconds x 240`` frames decoded.
    ``stats`` (optional) receives ``decoded`` (frames decoded) and ``seeks``.
    """
    av = require_av()
    stats = {} if stats is None else stats
    stats.update(decoded=0, seeks=0)
    try:
        frames = _decode_seeking(av, path, picks, fps, limits, stats)
        if frames is None:
            stats.update(decoded=0, seeks=0)
            frames = _decode_in_order(av, path, picks, limits, stats)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(f"{path}: undecodable video ({type(exc).__name__}: {exc})") from None
    return frames


def _decode_cap(limits: MediaLimits) -> int:
    return int(limits.max_video_seconds * 240) + 1  # no real clip within the limit has more frames


def _decode_seeking(av, path: Path, picks: Sequence[int], fps: float, limits: MediaLimits, stats: dict) -> list | None:
    cap = _decode_cap(limits)
    out: list = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if stream.time_base is None:
            return None
        tb = float(stream.time_base)
        start = stream.start_time or 0
        frames = None
        last = -math.inf  # seconds of the last decoded frame
        for i in picks:
            want = i / fps
            if frames is None or want - last > SEEK_GAP_SECONDS:
                container.seek(start + int(want / tb), stream=stream, backward=True, any_frame=False)
                stats["seeks"] += 1
                frames = container.decode(stream)
            chosen = None
            for frame in frames:
                stats["decoded"] += 1
                if stats["decoded"] > cap:
                    raise MediaError(f"{path}: more than {cap} frames decoded to reach the sampled ones")
                if frame.pts is None:
                    return None  # no timestamps: count frames instead
                last = (frame.pts - start) * tb
                if last + 0.5 / fps >= want:
                    chosen = frame
                    break
            if chosen is None:
                break  # the stream ended before this pick (its frame count was an estimate)
            check_pixels(chosen.width, chosen.height, limits, str(path))
            out.append(chosen.to_image())
    return out


def _decode_in_order(av, path: Path, picks: Sequence[int], limits: MediaLimits, stats: dict) -> list:
    cap = _decode_cap(limits)
    wanted = set(picks)
    out: list = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for n, frame in enumerate(container.decode(stream)):
            stats["decoded"] = n + 1
            if n > cap:
                raise MediaError(f"{path}: more than {cap} frames")
            if n in wanted:
                check_pixels(frame.width, frame.height, limits, str(path))
                out.append(frame.to_image())
                if len(out) == len(wanted):
                    break
    return out


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------
def check_audio(path: str | Path, limits: MediaLimits | None = None) -> AudioInfo:
    """Open an audio file, check its rate and duration against ``limits`` and every sample finite.

    The whole clip is read in blocks (at most ``max_audio_seconds`` of it, a few MB): a NaN or
    infinite sample anywhere is refused here, not found mid-training. MP3 frame counts in the header
    are estimates; the decoded length is what is checked.
    """
    import numpy as np

    limits = limits or MediaLimits()
    sf = require_soundfile()
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"file not found: {path}")
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels, n = int(f.samplerate), int(f.channels), int(f.frames)
            if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
                raise MediaError(
                    f"{path}: sample rate {rate} Hz outside media.min_sample_rate..max_sample_rate "
                    f"({limits.min_sample_rate}..{limits.max_sample_rate} Hz)"
                )
            if n > 0 and n / rate > limits.max_audio_seconds:
                raise MediaError(f"{path}: {n / rate:.1f} s long, over media.max_audio_seconds={limits.max_audio_seconds:g}")
            most = int(limits.max_audio_seconds * rate) + 1
            for block in f.blocks(blocksize=65536, dtype="float32", always_2d=True):
                if not np.isfinite(block).all():
                    at = decoded + int(np.argmax(~np.isfinite(block).all(axis=1)))
                    raise MediaError(f"{path}: a NaN or infinite sample at {at / rate:.3f} s; audio must be finite")
                decoded += len(block)
                if decoded > most:
                    raise MediaError(f"{path}: over media.max_audio_seconds={limits.max_audio_seconds:g} when decoded")
    except MediaError:
        raise
    except Exception as exc:  # soundfile.LibsndfileError / RuntimeError: not audio libsndfile reads
        raise MediaError(f"{path}: undecodable audio ({type(exc).__name__}: {exc})") from None
    if decoded == 0:
        raise MediaError(f"{path}: holds no audio samples")
    return AudioInfo(sample_rate=rate, channels=channels, seconds=decoded / rate)


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
    if not np.isfinite(data).all():  # the file may have changed since the check
        raise MediaError(f"{path}: holds NaN or infinite samples; audio must be finite")
    mono = data.mean(axis=1)
    if rate != limits.sample_rate:
        mono = require_soxr().resample(mono, rate, limits.sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _name(source: Any) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"frame list starting {next(iter(source), '?')}"
