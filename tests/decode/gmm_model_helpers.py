"""Real yes/no data, lang and a small monophone GMM model dir for the decoding tests.

The model is trained here from real components, independently of the GMM trainer: an equal alignment
(SIL, the words' phones, SIL; frames split evenly over the HMM states), one Gaussian per pdf estimated
with :meth:`DiagGmmSet.from_stats`, then a few Viterbi re-alignments (alignment graphs + kaldi-decoder)
and re-estimations. It is written with the GMM side's :func:`asr.gmm.model.write_model_dir` (model.json,
topo.json, tree.json, transition_model.json, final.gmm.pt, phones.txt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.data.corpora.yesno import prepare_yesno
from asr.decode.acoustic_model import load_acoustic_model
from asr.decode.align import align_utterance, tstates_to_pdfs
from asr.features.archive import FeatureArchive
from asr.features.compute import compute_features
from asr.features.deltas import add_deltas
from asr.gmm import DiagGmmSet, accumulate_pdf_stats
from asr.gmm.model import write_model_dir
from asr.graph.alignment_graph import AlignmentGraphCompiler
from asr.hmm.topology import make_topology
from asr.hmm.transition_model import TransitionModel
from asr.hmm.tree import MonophoneContextDependency
from asr.lang.grammar import add_grammar
from asr.lang.lang_dir import Lang
from asr.lang.prepare_lang import load_dictionary, prepare_lang


@dataclass
class YesnoSetup:
    """Paths of the prepared yes/no corpus."""

    root: Path
    train: Path
    test: Path
    lang: Path
    lang_test: Path


def prepare_yesno_setup(yesno_root: Path, out: Path) -> YesnoSetup:
    """Data dirs (train 31 / test 29), lang (CMUdict), lang_test (yes/no loop G) and MFCC archives."""
    data = prepare_yesno(yesno_root, out / "data")
    lang = out / "lang"
    prepare_lang(load_dictionary("cmudict", [data["train"] / "text", data["test"] / "text"]), lang)
    add_grammar(lang, "yesno", out_dir=out / "lang_test")
    for d in (data["train"], data["test"]):
        compute_features(d, options="mfcc", cmvn="speaker", jobs=1, progress=False)
    return YesnoSetup(out, data["train"], data["test"], lang, out / "lang_test")


def _equal_alignment(num_frames: int, pdfs: list[int]) -> np.ndarray:
    bounds = np.linspace(0, num_frames, len(pdfs) + 1).astype(int)
    out = np.empty(num_frames, dtype=np.int64)
    for k, pdf in enumerate(pdfs):
        out[bounds[k] : bounds[k + 1]] = pdf
    return out


def train_test_monophone(lang_dir: Path, train_dir: Path, out: Path, iterations: int = 3) -> Path:
    """Write a monophone model dir (one Gaussian per pdf) trained on ``train_dir``; return ``out``."""
    lang = Lang.load(lang_dir)
    topo = make_topology(lang.nonsilence_phones, lang.silence_phones)
    ctx = MonophoneContextDependency({p: topo.num_pdf_classes(p) for p in topo.phones})
    tm = TransitionModel.build(topo, ctx)
    archive = FeatureArchive(train_dir / "mfcc.h5")
    texts = dict(line.split(maxsplit=1) for line in (train_dir / "text").read_text().splitlines())
    sil = lang.phones.id("SIL")
    feats, transcripts = {}, {}
    for utt in archive.utt_ids:
        feats[utt] = torch.from_numpy(add_deltas(archive.read(utt), order=2, window=2))
        transcripts[utt] = [lang.words.id(w) for w in texts[utt].split()]
    # Equal alignment over SIL + phones of each word (first pronunciation) + SIL.
    pdf_ids = {}
    for utt, words in transcripts.items():
        phones = [sil]
        for w in words:
            phones += [lang.phones.id(p) for p in lang.lexicon.pronunciations(lang.words.symbol(w))[0]]
        phones.append(sil)
        pdfs = [ctx.compute([p], st.pdf_class) for p in phones for st in topo.hmm(p).states]
        pdf_ids[utt] = _equal_alignment(feats[utt].shape[0], pdfs)
    compiler = AlignmentGraphCompiler(lang.L, tm, ctx)
    graphs = {utt: compiler.compile(words) for utt, words in transcripts.items()}
    gmm = None
    for it in range(iterations + 1):
        stats = None
        for utt in feats:
            stats = accumulate_pdf_stats(feats[utt], torch.from_numpy(pdf_ids[utt]), ctx.num_pdfs, stats)
        gmm = DiagGmmSet.from_stats(stats)
        if it == iterations:
            break
        for utt in feats:
            ll = gmm.log_likelihoods(feats[utt]).numpy() * 0.1
            ali = align_utterance(graphs[utt], ll, tm)
            if ali.ok:
                pdf_ids[utt] = tstates_to_pdfs(ali.tstate_ids, tm).astype(np.int64)
    info = {
        "name": "mono",
        "feature_type": "mfcc",
        "delta_order": 2,
        "delta_window": 2,
        "phones": str(lang_dir / "phones.txt"),
        "lang": str(lang_dir),
        "train_data": str(train_dir),
        "train_seconds": 0.0,
    }
    write_model_dir(out, info, topo, ctx, tm, gmm, lang_dir / "phones.txt")
    return out


def load_model(model_dir: Path):
    """The decoder's view of the model dir (:func:`asr.decode.acoustic_model.load_acoustic_model`)."""
    return load_acoustic_model(model_dir)
