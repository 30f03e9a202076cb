"""Video I/O in one import: probing, streaming reads and atomic writes."""

from .probe import IMAGE_SUFFIXES, VideoInfo, has_audio, list_frame_files, parse_fps, probe
from .reader import read_frames, read_image
from .writer import VideoWriter, output_kind

__all__ = [
    "IMAGE_SUFFIXES",
    "VideoInfo",
    "VideoWriter",
    "has_audio",
    "list_frame_files",
    "output_kind",
    "parse_fps",
    "probe",
    "read_frames",
    "read_image",
]
