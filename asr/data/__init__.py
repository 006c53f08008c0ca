"""Kaldi-style data directories, audio reading and corpus preparers."""

from asr.data.audio import read_audio
from asr.data.datadir import DataDir, read_data_dir, write_data_dir

__all__ = ["DataDir", "read_data_dir", "write_data_dir", "read_audio"]
