"""Small synthetic videos and sounds, drawn here: the bundled sample data's clips and the tests' media.

``write_clip`` encodes frames drawn with PIL (a moving shape on a coloured background) to a
small MPEG-4 file with PyAV; ``tone`` / ``noise_burst`` / ``write_audio`` make non-speech sounds
with numpy and write them with soundfile. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from pathlib import Path

from proguard.media.decode import require_av, require_soundfile


def draw_frames(n: int = 8, size: int = 56, seed: int = 0) -> list:
    """``n`` RGB frames of a shape moving across a background (colours and path from ``seed``)."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    bg = tuple(rng.randrange(256) for _ in range(3))
    fg = tuple(rng.randrange(256) for _ in range(3))
    r = max(3, size // 6)
    x0, y0 = rng.randrange(size), rng.randrange(size)
    dx, dy = rng.choice((-1, 1)) * max(1, size // (2 * n)), rng.choice((-1, 1)) * max(1, size // (3 * n))
    frames = []
    for i in range(n):
        im = Image.new("RGB", (size, size), bg)
        x, y = (x0 + i * dx) % size, (y0 + i * dy) % size
        ImageDraw.Draw(im).ellipse((x - r, y - r, x + r, y + r), fill=fg)
        frames.append(im)
    return frames


def write_clip(path: str | Path, frames: list, fps: int = 4, codec: str = "mpeg4") -> Path:
    """Encode PIL frames to a video file (MPEG-4 Part 2 in .mp4 by default: small, in every FFmpeg build)."""
    av = require_av()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = frames[0].size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 64_000
        for im in frames:
            for packet in stream.encode(av.VideoFrame.from_image(im)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def tone(seconds: float = 1.0, rate: int = 16000, freq: float = 440.0, seed: int = 0):
    """A sine tone with a short fade in and out and a little noise (float32 mono)."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02) if len(t) > 1 else np.ones_like(t)
    noise = np.random.default_rng(seed).normal(0, 0.01, len(t))
    return (wave * fade + noise).astype(np.float32)


def noise_burst(seconds: float = 1.0, rate: int = 16000, seed: int = 0):
    """Bursts of decaying noise, like knocks or a crash (float32 mono)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, dtype=np.float32)
    for start in sorted(rng.integers(0, max(1, n - rate // 10), size=3)):
        length = min(n - start, rate // 5)
        env = np.exp(-np.arange(length) / (rate / 40))
        out[start : start + length] += (0.5 * rng.normal(0, 1, length) * env).astype(np.float32)
    return np.clip(out, -1, 1)


def write_audio(path: str | Path, samples, rate: int = 16000, subtype: str | None = None) -> Path:
    """Write mono samples; the format follows the suffix (.wav, .flac, .ogg, .mp3)."""
    sf = require_soundfile()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path
