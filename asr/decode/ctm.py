"""Phone-level CTM output from forced alignments.

A CTM line is ``<utt-id> 1 <start> <duration> <phone>`` (channel always 1, times in seconds, 4
decimals). Time stamps follow the team's centre convention (DESIGN.md, "Time stamps"): a segment that
starts at frame ``f`` starts at ``f * frame_shift + (frame_length - frame_shift) / 2`` seconds, i.e.
7.5 ms after ``f * 10 ms`` for 25 ms windows with a 10 ms shift, so boundaries land where the acoustics
change; its duration is ``num_frames * frame_shift``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from asr.atomic import atomic_write

DEFAULT_FRAME_SHIFT = 0.010
DEFAULT_FRAME_LENGTH = 0.025


def segment_start_seconds(
    first_frame: int, frame_shift: float = DEFAULT_FRAME_SHIFT, frame_length: float = DEFAULT_FRAME_LENGTH
) -> float:
    """Start time of a segment beginning at ``first_frame``: ``first_frame * shift + (length - shift) / 2``."""
    return first_frame * frame_shift + (frame_length - frame_shift) / 2.0


def ctm_lines(
    utt_id: str,
    segments: Sequence[tuple[int, int, int]],
    phone_names: Mapping[int, str] | None = None,
    frame_shift: float = DEFAULT_FRAME_SHIFT,
    frame_length: float = DEFAULT_FRAME_LENGTH,
) -> list[str]:
    """CTM lines (no newline) for one utterance's ``(phone, start_frame, num_frames)`` segments.

    Args:
        utt_id: utterance id (first field).
        segments: from :func:`asr.decode.align.phone_segments`.
        phone_names: phone id -> symbol (e.g. from phones.txt); None writes the integer ids.
        frame_shift, frame_length: in seconds (defaults 10 ms and 25 ms).
    """
    lines = []
    for phone, start, num_frames in segments:
        name = str(phone) if phone_names is None else phone_names[phone]
        begin = segment_start_seconds(start, frame_shift, frame_length)
        lines.append(f"{utt_id} 1 {begin:.4f} {num_frames * frame_shift:.4f} {name}")
    return lines


def write_phone_ctm(
    path: str | os.PathLike,
    utterances: Iterable[tuple[str, Sequence[tuple[int, int, int]]]],
    phone_names: Mapping[int, str] | None = None,
    frame_shift: float = DEFAULT_FRAME_SHIFT,
    frame_length: float = DEFAULT_FRAME_LENGTH,
) -> int:
    """Write a phone CTM atomically (centre time convention, see the module docstring).

    Args:
        path: output file.
        utterances: ``(utt_id, segments)`` pairs, in the order to write.
        phone_names, frame_shift, frame_length: as in :func:`ctm_lines`.

    Returns:
        Number of lines written.
    """
    n = 0
    with atomic_write(path) as f:
        for utt_id, segments in utterances:
            for line in ctm_lines(utt_id, segments, phone_names, frame_shift, frame_length):
                f.write(line + "\n")
                n += 1
    return n
