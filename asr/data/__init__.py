"""Kaldi-style data directories, audio reading, validation and corpus preparers."""

from asr.data.audio import read_audio
from asr.data.datadir import DataDir, read_data_dir, write_data_dir
from asr.data.validate import fix_data_dir, validate_data_dir

__all__ = ["DataDir", "read_data_dir", "write_data_dir", "read_audio", "validate_data_dir", "fix_data_dir"]
