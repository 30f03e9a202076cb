"""Streaming video I/O: probe, read_frames, VideoWriter, join_videos, and frame conversions.

Frames travel as ``uint8 (B, H, W, 3)`` RGB numpy batches; ``to_tensor`` /
``to_uint8`` convert to and from ``float32 (B, 3, H, W)`` tensors in ``[0, 1]``.
"""

from .frames import quantize, to_tensor, to_uint8
from .join import join_videos
from .paths import check_output_not_input
from .probe import IMAGE_SUFFIXES, VideoInfo, has_audio, list_frame_files, parse_fps, probe
from .reader import read_frames, read_image
from .writer import VideoWriter, output_kind

__all__ = [
    "IMAGE_SUFFIXES",
    "VideoInfo",
    "VideoWriter",
    "check_output_not_input",
    "has_audio",
    "join_videos",
    "list_frame_files",
    "output_kind",
    "parse_fps",
    "probe",
    "quantize",
    "read_frames",
    "read_image",
    "to_tensor",
    "to_uint8",
]
