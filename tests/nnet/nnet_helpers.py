"""Helpers for the DNN tests: tiny learnable feature archives, alignments and GMM dirs, written with the
real writers (ArchiveWriter, write_alignment_archive, Topology/tree/TransitionModel.save) in tmp_path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.features.archive import ArchiveWriter, base_attrs
from asr.gmm.alignment_archive import write_alignment_archive
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency

NONSIL = [3, 4]
SIL = [1, 2]
PHONES_TXT = "<eps> 0\nSIL 1\nSPN 2\nA 3\nB 4\n#0 5\n"


@dataclass
class TinySet:
    """One tiny data set: its archive path, utterance ids, offsets, per-frame pdf ids."""

    archive: Path
    utt_ids: list[str]
    offsets: np.ndarray
    pdf_ids: np.ndarray
    feats: np.ndarray


def tiny_hmm(gmm_dir: Path | None = None):
    """A monophone topology / context dependency / transition model (16 pdfs); saved into ``gmm_dir``."""
    topo = make_topology(NONSIL, SIL)
    ctx_dep = MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    tm = TransitionModel.build(topo, ctx_dep)
    if gmm_dir is not None:
        gmm_dir.mkdir(parents=True, exist_ok=True)
        topo.save(gmm_dir / "topo.json")
        ctx_dep.save(gmm_dir / "tree.json")
        tm.save(gmm_dir / "transition_model.json")
        (gmm_dir / "phones.txt").write_text(PHONES_TXT)
        info = {"kind": "gmm", "name": "mono", "feature_type": "mfcc", "delta_order": 2, "num_pdfs": ctx_dep.num_pdfs}
        (gmm_dir / "model.json").write_text(json.dumps(info))
    return topo, ctx_dep, tm


def write_tiny_set(
    data_dir: Path,
    num_utts: int = 12,
    dim: int = 40,
    num_pdfs: int = 16,
    seed: int = 0,
    frames: tuple[int, int] = (30, 60),
    prefix: str = "spk",
) -> TinySet:
    """``data_dir/fbank.h5``: utterances whose frames are class means (one pdf per segment) plus noise."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(1234).normal(size=(num_pdfs, dim)) * 2.0
    utt_ids, feats, pdfs = [], [], []
    for i in range(num_utts):
        length = int(rng.integers(*frames))
        segs = []
        while sum(len(s) for s in segs) < length:
            segs.append(np.full(int(rng.integers(3, 9)), rng.integers(num_pdfs)))
        pdf = np.concatenate(segs)[:length]
        utt_ids.append(f"{prefix}{i % 3}-utt{i:03d}")
        pdfs.append(pdf)
        feats.append((means[pdf] + rng.normal(size=(length, dim))).astype(np.float32) + 5.0)
    order = np.argsort(utt_ids)
    utt_ids = [utt_ids[i] for i in order]
    feats = [feats[i] for i in order]
    pdfs = [pdfs[i] for i in order]
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "fbank.h5"
    with ArchiveWriter(path, dim=dim, attrs=base_attrs("fbank", None, str(data_dir))) as writer:
        for utt, f in zip(utt_ids, feats):
            writer.append(utt, f)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pdfs])]).astype(np.int64)
    return TinySet(path, utt_ids, offsets, np.concatenate(pdfs).astype(np.int32), np.concatenate(feats))


def write_tiny_alignment(path: Path, tiny: TinySet, num_pdfs: int = 16, failed: Sequence[str] = ()) -> Path:
    """``ali.h5`` of ``tiny`` with the real writer; utterances in ``failed`` marked failed (-1)."""
    pdf_ids = tiny.pdf_ids.copy()
    for utt in failed:
        i = tiny.utt_ids.index(utt)
        pdf_ids[tiny.offsets[i] : tiny.offsets[i + 1]] = -1
    aligned = pdf_ids >= 0
    phone_ids = np.where(aligned, 3, -1)
    tstate_ids = np.where(aligned, 0, -1)
    write_alignment_archive(
        path,
        tiny.utt_ids,
        tiny.offsets,
        pdf_ids,
        phone_ids,
        tstate_ids,
        {u: "test failure" for u in failed},
        {"model_dir": str(path.parent), "num_pdfs": num_pdfs, "num_transition_states": 20},
    )
    return path


def write_tiny_corpus(root: Path, num_train: int = 12, num_dev: int = 4, dev_alignment: bool = False, **kw):
    """``root/data/{train,dev}/fbank.h5`` and a GMM dir ``root/exp/tiny/mono`` with ``ali.h5``
    (and ``ali_dev.h5`` when asked). Returns (train TinySet, dev TinySet, gmm_dir)."""
    train = write_tiny_set(root / "data" / "train", num_utts=num_train, seed=1, **kw)
    dev = write_tiny_set(root / "data" / "dev", num_utts=num_dev, seed=2, prefix="dev", **kw)
    gmm_dir = root / "exp" / "tiny" / "mono"
    tiny_hmm(gmm_dir)
    write_tiny_alignment(gmm_dir / "ali.h5", train)
    if dev_alignment:
        write_tiny_alignment(gmm_dir / "ali_dev.h5", dev)
    return train, dev, gmm_dir
