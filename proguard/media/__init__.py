"""Video and audio: decoding and validation (``decode``) and small synthetic clips and sounds (``synth``).

``from proguard.media import check_video, load_audio, MediaLimits, ...`` re-exports ``decode``.
"""

from proguard.media.decode import (
    AUDIO_SUFFIXES,
    FRAME_SUFFIXES,
    AudioInfo,
    MediaError,
    MediaLimits,
    Video,
    VideoInfo,
    check_audio,
    check_image,
    check_pixels,
    check_video,
    decode_frames,
    frame_files,
    load_audio,
    load_video,
    open_image,
    require_av,
    require_soundfile,
    require_soxr,
    sample_indices,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "FRAME_SUFFIXES",
    "AudioInfo",
    "MediaError",
    "MediaLimits",
    "Video",
    "VideoInfo",
    "check_audio",
    "check_image",
    "check_pixels",
    "check_video",
    "decode_frames",
    "frame_files",
    "load_audio",
    "load_video",
    "open_image",
    "require_av",
    "require_soundfile",
    "require_soxr",
    "sample_indices",
]
