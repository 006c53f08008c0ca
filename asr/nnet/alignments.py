"""Senone targets for DNN training: the pdf ids of a GMM model dir's ``ali.h5``.

The file is read with the GMM side's reader (:class:`asr.gmm.alignment_archive.AlignmentArchive`, which
validates it); this module turns it into the one small structure the trainer uses, so a change of the
alignment format touches only this function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.gmm.alignment_archive import AlignmentArchive


@dataclass
class PdfAlignment:
    """The pdf-id alignment of the utterances of a feature archive.

    Attributes:
        path: the file it was read from.
        utt_ids: utterances (with or without an alignment), in file order.
        offsets: int64 ``[num_utts + 1]``: utterance ``i`` is ``pdf_ids[offsets[i]:offsets[i + 1]]``.
        pdf_ids: int32 ``[total_frames]``; -1 in utterances without an alignment.
        failed_utt_ids: utterances whose alignment failed (their frames are -1).
        num_pdfs: pdfs of the model that aligned (None when unknown).
        model_dir: that model's directory ("" when unknown).
    """

    path: Path
    utt_ids: list[str]
    offsets: np.ndarray
    pdf_ids: np.ndarray
    failed_utt_ids: list[str] = field(default_factory=list)
    num_pdfs: int | None = None
    model_dir: str = ""

    @property
    def num_frames(self) -> int:
        """Total frames (aligned or not)."""
        return int(self.offsets[-1])

    @property
    def aligned_pdf_ids(self) -> np.ndarray:
        """The pdf ids of the aligned frames only (``pdf_ids >= 0``)."""
        return self.pdf_ids[self.pdf_ids >= 0]


def read_pdf_alignment(path: str | os.PathLike) -> PdfAlignment:
    """Read the pdf ids of an ``ali.h5`` (InputError naming the file when it is missing or malformed)."""
    archive = AlignmentArchive(path)
    return PdfAlignment(
        path=archive.path,
        utt_ids=list(archive.utt_ids),
        offsets=archive.offsets,
        pdf_ids=archive.pdf_ids,
        failed_utt_ids=list(archive.failed),
        num_pdfs=archive.num_pdfs,
        model_dir=archive.model_dir,
    )
