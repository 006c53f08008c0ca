"""Kaldi interop for the hybrid DNN: pdf-id alignments in (train our DNN on Kaldi's alignments), log-likelihoods
out (decode our DNN with Kaldi), through kaldi-io. Feature arks: :mod:`asr.features.kaldi_ark`.

Command line::

    python -m asr.interop.kaldi import-ali --ark ali.pdf.ark [more.ark ...] --feats data/train/fbank.h5 \\
        --out exp/kaldi_ali/ali.h5 [--num-pdfs N | --model exp/mono] [--allow-extra] [--no-pipes]
    python -m asr.interop.kaldi export-ali --ali exp/mono/ali.h5 --out ark:ali.pdf.ark   # or ark,t:ali.pdf.txt
    python -m asr.interop.kaldi write-loglikes --model exp/yesno/dnn/run --data data/test \\
        --out ark,scp:loglikes.ark,loglikes.scp   # or --out loglikes.ark [--scp loglikes.scp]

**Kaldi alignments -> our DNN.** In Kaldi, turn the transition-id alignments of an alignment dir into pdf ids
and read the number of pdfs::

    ali-to-pdf exp/tri3_ali/final.mdl "ark:gunzip -c exp/tri3_ali/ali.*.gz |" ark:ali.pdf.ark  # binary
    ali-to-pdf exp/tri3_ali/final.mdl "ark:gunzip -c exp/tri3_ali/ali.*.gz |" ark,t:ali.pdf.txt  # or text
    hmm-info exp/tri3_ali/final.mdl | grep pdfs       # "number of pdfs 1896": --num-pdfs 1896

``import-ali`` reads either form (``utt pdf pdf ...`` text lines, or binary int32 vectors; ``ark:``/``ark,t:``
prefixes, ``scp:`` index files (``ali-to-pdf ... ark,scp:a.ark,a.scp``) and ``.gz`` files are accepted) and
writes our ``ali.h5`` (:mod:`asr.gmm.alignment_archive`) in the order of our feature archive, checking every
utterance's frame count against it (a mismatch is an :class:`~asr.errors.InputError` naming the utterance and
the Kaldi file; compute our features with Kaldi's frame settings: 25 ms / 10 ms, ``snip_edges``, which are our
defaults). Utterances of the archive without an alignment are marked failed (as Kaldi's aligner leaves out
the ones it could not align); an aligned utterance missing from the archive is an error unless
``--allow-extra``. The number of pdfs is ``--num-pdfs``, or the tree of ``--model``, or else the largest
pdf id + 1 (a warning: trailing pdfs never seen in the alignments would be lost). Kaldi's pdf alignments carry
no phones or transition states: ``/phone_ids`` and ``/tstate_ids`` hold 0 in aligned frames and the file has
the attribute ``pdf_only = true`` (``num_transition_states = 1``); only DNN training (which reads pdf ids alone)
should use such a file, not a GMM trainer.

DNN training (``python -m asr.train``) reads ``<gmm_dir>/ali.h5`` and takes the senone count and the HMM
files it copies into the DNN model dir from ``gmm_dir`` (``tree.json``, ``transition_model.json``,
``topo.json``, ``phones.txt``, ``model.json``). ``--model DIR`` copies those files of one of our model dirs
beside the written ``ali.h5``, so that the folder is a ``gmm_dir``: ``python -m asr.train
gmm_dir=exp/kaldi_ali decode.enabled=false``. That is right only when the Kaldi pdf ids mean the pdfs of that
model (e.g. alignments of our own model that went through Kaldi tools); for a Kaldi tree there is no such dir
(we do not convert Kaldi's ``final.mdl`` / ``tree`` to our JSON formats), so our trainer cannot yet train
on a Kaldi tree's alignments end to end; the ``ali.h5`` itself (pdf ids, counts) is complete.

**Our DNN -> Kaldi's decoder.** ``write-loglikes`` writes, per utterance of the data dir (in its sorted order,
features from ``<data>/<feature_type>.h5``), the float32 matrix ``[T, num_pdfs]`` of ``log p(s|x) - log p(s)``
(:meth:`asr.nnet.model.DnnAcousticModel.log_likelihoods`, not multiplied by the acoustic scale), as Kaldi's
``nnet-forward --class-frame-counts`` writes it; ``latgen-faster-mapped`` applies the acoustic scale::

    latgen-faster-mapped --acoustic-scale=0.1 --beam=13 --lattice-beam=8 --max-active=7000 \\
        --allow-partial=true --word-symbol-table=exp/tri3/graph/words.txt \\
        exp/tri3_ali/final.mdl exp/tri3/graph/HCLG.fst scp:loglikes.scp "ark:|gzip -c > decode/lat.1.gz"
    lattice-best-path --acoustic-scale=0.1 "ark:gunzip -c decode/lat.1.gz |" ark,t:- | \\
        utils/int2sym.pl -f 2- exp/tri3/graph/words.txt            # or local/score.sh

The transition model caveat: ``latgen-faster-mapped`` maps each arc's Kaldi transition-id to a pdf id with
``final.mdl``'s transition model and reads that column of the matrix. Column ``j`` of our matrix is output
``j`` of our network, i.e. pdf ``j`` of the tree the network was trained on. So:

- what matches: a DNN trained on alignments imported from Kaldi (``import-ali``) outputs Kaldi's pdf ids of
  the ``final.mdl`` / ``tree`` that made those alignments; decode with that ``final.mdl`` and a graph built
  from that tree (``mkgraph.sh``), with our features at Kaldi's frame rate (the matrix must have one row per
  frame of Kaldi's features); the scale convention (``--acoustic-scale`` = 1 / our LM weight, 0.1 = 10);
- what does not: a DNN trained on our own GMM's alignments outputs the pdf ids of our ``tree.json``, which
  no Kaldi ``final.mdl`` knows (our ``transition_model.json`` / ``tree.json`` are our JSON formats, with no
  converter to Kaldi's), and our ``HCLG.fst``'s input labels are our transition-state ids + 1 (one per HMM
  state, no separate self-loop/forward transition-ids as Kaldi's), so neither our graph nor our model works
  with Kaldi's ``final.mdl``. Decode such a model with ``python -m asr.decode.decode_dir`` (the same Kaldi
  decoder code through kaldi-decoder).

``export-ali`` writes an ``ali.h5``'s pdf ids as ``ali-to-pdf`` does (binary ``ark:`` or text ``ark,t:``;
failed utterances left out), e.g. to train a Kaldi nnet on our GMM's alignments with our features
(``python -m asr.features.kaldi_ark export``); their pdf ids then mean our tree's pdfs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.atomic import atomic_path, atomic_write
from asr.data.audio import pipes_allowed, refused_pipe_message
from asr.data.datadir import read_data_dir, read_table_lines
from asr.errors import AsrError, ConfigError, InputError
from asr.features.archive import FeatureArchive
from asr.features.kaldi_ark import import_kaldi_io
from asr.gmm.alignment_archive import AlignmentArchive, write_alignment_archive

log = logging.getLogger("asr.interop.kaldi")

#: Files of a model dir copied beside an imported ali.h5 by ``--model`` (what ``asr.train`` reads of gmm_dir).
MODEL_FILES = ("model.json", "tree.json", "transition_model.json", "topo.json", "phones.txt")
IMPORT_INFO = "kaldi_import.json"


# ----------------------------------------------------------------------------------------- reading int vectors
@dataclass(frozen=True)
class IntVector:
    """One entry of a Kaldi table of int vectors.

    Attributes:
        key: the utterance id.
        values: int32 ``[n]``.
        path: the file it came from; line: its 1-based line in a text ark or an scp (None in a binary ark,
            whose entries have ``byte``, the offset of the key, instead).
    """

    key: str
    values: np.ndarray
    path: Path
    line: int | None
    byte: int | None = None

    def where(self) -> str:
        """``path:line`` or ``path (byte N)``, for messages."""
        return f"{self.path}:{self.line}" if self.line is not None else f"{self.path} (byte {self.byte})"

    def error(self, message: str) -> InputError:
        """An InputError about this entry, naming its file and line (or byte offset)."""
        if self.line is None and self.byte is not None:
            message += f" (entry at byte {self.byte})"
        return InputError(message, self.path, self.line)


def _parse_source(source: str | os.PathLike) -> tuple[str, Path]:
    """``ark:P``, ``ark,t:P``, ``scp:P`` (any Kaldi rspecifier options before the colon) or a bare path (an scp
    when it ends in ``.scp``) -> ``(kind, path)``."""
    text = os.fspath(source)
    head, sep, rest = text.partition(":")
    if sep and rest:
        options = head.split(",")
        if "ark" in options:
            return "ark", Path(rest)
        if "scp" in options:
            return "scp", Path(rest)
    path = Path(text)
    return ("scp" if path.suffix == ".scp" else "ark"), path


def _open_binary(path: Path):
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")
    except OSError as err:
        raise InputError(f"cannot open: {err.strerror}", path) from None


def _read_ark_vectors(path: Path) -> Iterator[IntVector]:
    """Entries of a text or binary ark of int vectors (each entry's form detected on its own)."""
    f = _open_binary(path)
    line = 1  # current line; meaningful while everything read so far was text
    text_only = True
    with f:
        try:
            while True:
                c = f.read(1)
                while c and c in b" \t\r\n":  # whitespace between entries
                    line += c == b"\n"
                    c = f.read(1)
                if not c:
                    return
                start = f.tell() - 1
                key = bytearray()
                while c and c not in b" \n":
                    key += c
                    c = f.read(1)
                here = line if text_only else None
                try:
                    name = key.decode("utf-8")
                except UnicodeDecodeError:
                    raise InputError(f"utterance id at byte {start} is not UTF-8", path, here) from None
                first = f.read(1) if c == b" " else c
                if first == b"\0":
                    if f.read(1) != b"B":
                        raise InputError(f"utterance {name!r} (byte {start}): bad binary marker", path, here)
                    text_only = False
                    values = _read_binary_int_vector(f, path, name, start)
                    yield IntVector(name, values, path, None, start)
                    continue
                if first in (b"\n", b""):  # "utt \n": an empty text vector
                    yield IntVector(name, np.zeros(0, dtype=np.int32), path, here, start)
                    line += first == b"\n"
                    continue
                raw = first + f.readline()
                yield IntVector(name, _parse_text_ints(raw, path, here, name), path, here, start)
                line += 1
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise InputError(f"cannot read: {err}", path) from None


def _read_binary_int_vector(f, path: Path, key: str, start: int) -> np.ndarray:
    size_marker = f.read(1)
    size_bytes = f.read(4)
    if size_marker != b"\x04" or len(size_bytes) != 4:
        raise InputError(f"utterance {key!r} (byte {start}): not a binary int32 vector", path)
    count = int(np.frombuffer(size_bytes, dtype="<i4")[0])
    if count < 0:
        raise InputError(f"utterance {key!r} (byte {start}): negative vector size {count}", path)
    data = f.read(5 * count)
    if len(data) != 5 * count:
        raise InputError(f"utterance {key!r} (byte {start}): file ends inside its vector (truncated ark?)", path)
    pairs = np.frombuffer(data, dtype=[("size", "i1"), ("value", "<i4")], count=count)
    if count and np.any(pairs["size"] != 4):
        raise InputError(f"utterance {key!r} (byte {start}): elements are not int32", path)
    return pairs["value"].astype(np.int32)


def _parse_text_ints(raw: bytes, path: Path, line: int | None, key: str) -> np.ndarray:
    try:
        tokens = raw.decode("utf-8").split()
    except UnicodeDecodeError:
        raise InputError(f"utterance {key!r}: the line is not UTF-8", path, line) from None
    if tokens[:1] == ["["] and tokens[-1:] == ["]"]:  # Kaldi's bracketed text vector form
        tokens = tokens[1:-1]
    try:
        return np.array([int(t) for t in tokens], dtype=np.int32)
    except (ValueError, OverflowError):
        bad = next(t for t in tokens if not t.lstrip("-").isdigit() or abs(int(t)) >= 2**31)
        raise InputError(f"utterance {key!r}: {bad!r} is not an integer pdf id", path, line) from None


def _read_scp_vectors(path: Path, allow_pipes: bool) -> Iterator[IntVector]:
    kaldi_io = import_kaldi_io()
    for number, key, rxfile in read_table_lines(path):
        if rxfile.rstrip().endswith("|") and not pipes_allowed(allow_pipes):
            raise InputError(refused_pipe_message(rxfile), path, number)
        try:
            values = np.asarray(kaldi_io.read_vec_int(rxfile), dtype=np.int32)
        except Exception as err:  # missing file, bad offset, corrupt vector: kaldi_io raises assorted types
            raise InputError(f"cannot read int vector {rxfile!r}: {type(err).__name__}: {err}", path, number) from err
        yield IntVector(key, values, path, number)


def read_int_vectors(source: str | os.PathLike, allow_pipes: bool = True) -> Iterator[IntVector]:
    """Iterate the entries of a Kaldi table of int vectors (``ali-to-pdf`` output), in file order.

    Args:
        source: ``ark:PATH``, ``ark,t:PATH``, ``scp:PATH``, or a path (``.scp`` = an index; anything else an ark,
            text or binary, gzipped or not).
        allow_pipes: allow ``command |`` entries in an scp.

    Raises:
        InputError: naming the file (and the line of a text ark or scp): unreadable, truncated, a value that is
            not an integer.
    """
    kind, path = _parse_source(source)
    return _read_scp_vectors(path, allow_pipes) if kind == "scp" else _read_ark_vectors(path)


# ------------------------------------------------------------------------------------------- import / export
@dataclass
class ImportSummary:
    """What :func:`import_pdf_alignments` did.

    Attributes:
        out: the ``ali.h5`` written; num_pdfs: its pdf count (and where it came from, ``num_pdfs_source``).
        aligned: utterances with an alignment; frames: their frames.
        unaligned: archive utterances without one (marked failed); extra: alignment utterances not in the
            archive (skipped, with ``allow_extra``).
    """

    out: Path
    num_pdfs: int
    num_pdfs_source: str
    aligned: int
    frames: int
    unaligned: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def import_pdf_alignments(
    sources: Sequence[str | os.PathLike],
    feats: str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_pdfs: int | None = None,
    model_dir: str | os.PathLike | None = None,
    allow_extra: bool = False,
    allow_pipes: bool = True,
) -> ImportSummary:
    """Read Kaldi pdf-id alignments into an ``ali.h5`` that joins ``feats`` by offset (module docstring).

    Args:
        sources: Kaldi tables of int vectors (:func:`read_int_vectors`); an utterance may appear in one only.
        feats: our feature archive of the same utterances (``<data>/fbank.h5``).
        out: the ``ali.h5`` to write (atomically).
        num_pdfs: the model's pdf count (Kaldi's ``hmm-info``); checked against ``model_dir``'s tree if both.
        model_dir: one of our model dirs whose pdf numbering the ids follow: its tree gives ``num_pdfs`` and its
            :data:`MODEL_FILES` are copied beside ``out`` (so that folder is a ``gmm_dir`` for ``asr.train``).
        allow_extra: skip aligned utterances that the archive lacks (default: InputError).
        allow_pipes: allow ``command |`` entries in an scp.

    Returns:
        An :class:`ImportSummary`.

    Raises:
        InputError: naming the file (and line, for text): bad syntax, a repeated utterance, an utterance whose
            frame count differs from the archive's, an utterance the archive lacks, a pdf id out of range, no
            alignment for any utterance of the archive; ConfigError: ``num_pdfs`` disagreeing with the tree.
    """
    if not sources:
        raise ConfigError("give at least one Kaldi alignment source")
    out = Path(out)
    num_pdfs_source = "--num-pdfs"
    if model_dir is not None:
        from asr.hmm.tree import load_context_dependency

        model_dir = Path(model_dir)
        tree_pdfs = int(load_context_dependency(model_dir / "tree.json").num_pdfs)
        if num_pdfs is not None and int(num_pdfs) != tree_pdfs:
            raise ConfigError(f"num_pdfs {num_pdfs} but the tree of {model_dir} has {tree_pdfs} pdfs")
        num_pdfs, num_pdfs_source = tree_pdfs, f"tree of {model_dir}"
    if num_pdfs is not None and int(num_pdfs) < 1:
        raise ConfigError(f"num_pdfs must be >= 1, not {num_pdfs}")
    with FeatureArchive(feats) as archive:
        utt_ids, offsets = list(archive.utt_ids), archive.offsets.copy()
        feature_type = archive.feature_type
    index = {u: i for i, u in enumerate(utt_ids)}
    pdf_ids = np.full(int(offsets[-1]), -1, dtype=np.int32)
    seen: dict[str, str] = {}
    extra: list[str] = []
    largest = -1
    for source in sources:
        for entry in read_int_vectors(source, allow_pipes):
            if entry.key in seen:
                raise entry.error(f"utterance {entry.key!r} repeated (first at {seen[entry.key]})")
            seen[entry.key] = entry.where()
            i = index.get(entry.key)
            if i is None:
                if not allow_extra:
                    raise entry.error(
                        f"utterance {entry.key!r} is not in the feature archive {archive.path} (pass --allow-extra "
                        "to skip such utterances)"
                    )
                extra.append(entry.key)
                continue
            frames = int(offsets[i + 1] - offsets[i])
            if entry.values.shape[0] != frames:
                raise entry.error(
                    f"utterance {entry.key!r} has {entry.values.shape[0]} pdf ids but {frames} frames in "
                    f"{archive.path} (features computed with other frame settings?)"
                )
            if entry.values.size:
                low, high = int(entry.values.min()), int(entry.values.max())
                if low < 0 or (num_pdfs is not None and high >= num_pdfs):
                    bad = low if low < 0 else high
                    limit = num_pdfs if num_pdfs is not None else "inf"
                    raise entry.error(f"utterance {entry.key!r}: pdf id {bad} outside [0, {limit})")
                largest = max(largest, high)
            pdf_ids[offsets[i] : offsets[i + 1]] = entry.values
    aligned = [u for u in utt_ids if u in seen]
    if not aligned:
        raise InputError(f"no utterance of the feature archive {archive.path} has an alignment", os.fspath(sources[0]))
    if num_pdfs is None:
        num_pdfs, num_pdfs_source = largest + 1, "largest pdf id + 1"
        log.warning(
            "number of pdfs taken as the largest pdf id + 1 = %d; give --num-pdfs (Kaldi: hmm-info final.mdl) if "
            "the model has more",
            num_pdfs,
        )
    unaligned = [u for u in utt_ids if u not in seen]
    ok = pdf_ids >= 0
    zeros = np.where(ok, 0, -1).astype(np.int32)
    attrs = {
        "model_dir": os.fspath(model_dir) if model_dir is not None else "kaldi",
        "num_pdfs": int(num_pdfs),
        "num_transition_states": 1,
        "pdf_only": True,
        "source": "kaldi ali-to-pdf",
        "kaldi_sources": json.dumps([os.fspath(s) for s in sources]),
        "feature_archive": os.fspath(archive.path),
        "feature_type": feature_type,
    }
    failed = {u: "no alignment in the Kaldi input" for u in unaligned}
    write_alignment_archive(out, utt_ids, offsets, pdf_ids, zeros, zeros, failed, attrs)
    if model_dir is not None and out.parent.resolve() != model_dir.resolve():
        for name in MODEL_FILES:
            if (model_dir / name).is_file():
                with atomic_path(out.parent / name) as tmp:
                    shutil.copyfile(model_dir / name, tmp)
    summary = ImportSummary(out, int(num_pdfs), num_pdfs_source, len(aligned), int(ok.sum()), unaligned, extra)
    with atomic_write(out.parent / IMPORT_INFO) as f:
        json.dump(
            {
                "ali": os.fspath(out),
                "sources": [os.fspath(s) for s in sources],
                "feature_archive": os.fspath(archive.path),
                "num_pdfs": summary.num_pdfs,
                "num_pdfs_source": num_pdfs_source,
                "aligned_utts": summary.aligned,
                "aligned_frames": summary.frames,
                "unaligned_utts": unaligned,
                "extra_utts": extra,
                "model_dir": None if model_dir is None else os.fspath(model_dir),
            },
            f,
            indent=1,
        )
        f.write("\n")
    log.info(
        "imported %d aligned utterances (%d frames, %d pdfs from %s) into %s; %d archive utterances without an "
        "alignment, %d alignments skipped",
        summary.aligned, summary.frames, summary.num_pdfs, num_pdfs_source, out, len(unaligned), len(extra),
    )  # fmt: skip
    return summary


def _parse_wspecifier(spec: str | os.PathLike, scp: str | os.PathLike | None) -> tuple[Path, Path | None, bool]:
    """``PATH``, ``ark:PATH``, ``ark,t:PATH``, ``ark,scp:ARK,SCP`` -> ``(ark, scp or None, text)``."""
    text = os.fspath(spec)
    head, sep, rest = text.partition(":")
    if sep and rest and set(head.split(",")) <= {"ark", "scp", "t", "b", "f", "nf", "p"} and "ark" in head.split(","):
        options = head.split(",")
        if "scp" in options:
            parts = rest.split(",")
            if len(parts) != 2 or scp is not None:
                raise ConfigError(f"{text!r}: ark,scp:ARK,SCP names two files (and then no --scp)")
            return Path(parts[0]), Path(parts[1]), "t" in options
        return Path(rest), None if scp is None else Path(scp), "t" in options
    if sep and head in ("scp", "t"):
        raise ConfigError(f"{text!r}: write an ark (ark:PATH or ark,scp:ARK,SCP)")
    return Path(text), None if scp is None else Path(scp), False


def export_pdf_alignments(ali: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write an ``ali.h5``'s pdf ids as ``ali-to-pdf`` does: ``out`` is ``ark:PATH`` / ``PATH`` (binary int32
    vectors) or ``ark,t:PATH`` (text ``utt pdf pdf ...`` lines); failed utterances are left out. Returns the
    number of utterances written."""
    kaldi_io = import_kaldi_io()
    path, _, text = _parse_wspecifier(out, None)
    archive = AlignmentArchive(ali)
    count = 0
    with atomic_write(path, "wb") as f:
        for utt in archive.utt_ids:
            pdfs = archive.pdfs(utt)
            if pdfs is None:
                continue
            if text:
                f.write((utt + " " + "".join(f"{p} " for p in pdfs.tolist()) + "\n").encode("utf-8"))
            else:
                f.write(utt.encode("utf-8") + b" ")
                kaldi_io.write_vec_int(f, np.ascontiguousarray(pdfs, dtype=np.int32))
            count += 1
    log.info("wrote the pdf alignments of %d utterances of %s to %s", count, ali, path)
    return count


def write_loglikes(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    feats: str | os.PathLike | None = None,
    scp: str | os.PathLike | None = None,
    device: str = "cpu",
) -> int:
    """Write an acoustic model's log-likelihoods of every utterance as a Kaldi float matrix ark (+ scp).

    Args:
        model_dir: any model dir :func:`asr.decode.acoustic_model.load_acoustic_model` reads (``dnn``, an
            exported ``dnn-onnx`` / ``dnn-torchscript``, or a GMM).
        out: ``PATH``, ``ark:PATH`` or ``ark,scp:ARK,SCP``: binary ``FM`` matrices ``[T, num_pdfs]``, keyed by
            utterance id; the scp names the ark as given (``utt ark:byte_offset``).
        data_dir: the data dir: its utterances (sorted) from ``<data>/<feature_type>.h5``; or
        feats: a feature archive: all its utterances, in its order.
        scp: the scp to write (instead of ``ark,scp:``).
        device: torch device of the model.

    Returns:
        the number of utterances written.

    Raises:
        InputError: a data dir utterance missing from the archive, an archive of another feature type, the
            model dir's errors; ConfigError: neither or both of ``data_dir`` and ``feats``, a bad ``out``.
    """
    from asr.decode.acoustic_model import load_acoustic_model

    if (data_dir is None) == (feats is None):
        raise ConfigError("give a data dir or a feature archive (one of them)")
    ark_path, scp_path, text = _parse_wspecifier(out, scp)
    if text:
        raise ConfigError("log-likelihood arks are written binary (Kaldi reads both); drop the ',t'")
    model = load_acoustic_model(model_dir, device=device)
    archive_path = Path(feats) if feats is not None else Path(data_dir) / f"{model.feature_type}.h5"
    kaldi_io = import_kaldi_io()
    scp_lines: list[str] = []
    with FeatureArchive(archive_path) as archive:
        if archive.feature_type != model.feature_type:
            raise InputError(
                f"archive holds {archive.feature_type!r} features, the model needs {model.feature_type!r}", archive_path
            )
        if data_dir is not None:
            utts = read_data_dir(data_dir).utt_ids
            missing = [u for u in utts if u not in archive]
            if missing:
                raise InputError(
                    f"utterance {missing[0]!r} of the data dir has no features ({len(missing)} missing)", archive_path
                )
        else:
            utts = list(archive.utt_ids)
        with atomic_write(ark_path, "wb") as f:
            for utt in utts:
                loglikes = np.ascontiguousarray(model.log_likelihoods(archive.read(utt)), dtype=np.float32)
                f.write(utt.encode("utf-8") + b" ")
                scp_lines.append(f"{utt} {os.fspath(ark_path)}:{f.tell()}\n")
                kaldi_io.write_mat(f, loglikes)
    if scp_path is not None:
        with atomic_write(scp_path) as f:
            f.writelines(scp_lines)
    log.info("wrote the log-likelihoods of %d utterances (%d pdfs) to %s", len(utts), model.num_pdfs, ark_path)
    return len(utts)


# ------------------------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (module docstring); returns the exit status."""
    from asr.logging_setup import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m asr.interop.kaldi",
        description="Kaldi interop: pdf alignments in and out, DNN log-likelihood arks for latgen-faster-mapped.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import-ali", help="Kaldi ali-to-pdf output -> ali.h5")
    imp.add_argument("--ark", nargs="+", required=True, help="ark:PATH, ark,t:PATH, scp:PATH or paths")
    imp.add_argument("--feats", required=True, help="our feature archive of the utterances (fbank.h5)")
    imp.add_argument("--out", required=True, help="ali.h5 to write")
    imp.add_argument("--num-pdfs", type=int, help="the Kaldi model's pdf count (hmm-info final.mdl)")
    imp.add_argument("--model", help="our model dir whose pdfs the ids are (copied beside --out for asr.train)")
    imp.add_argument("--allow-extra", action="store_true", help="skip aligned utterances the archive lacks")
    imp.add_argument("--no-pipes", action="store_true", help="refuse 'command |' scp entries")
    exp = sub.add_parser("export-ali", help="ali.h5 -> Kaldi pdf alignments (as ali-to-pdf writes)")
    exp.add_argument("--ali", required=True, help="ali.h5")
    exp.add_argument("--out", required=True, help="ark:PATH (binary) or ark,t:PATH (text)")
    wl = sub.add_parser("write-loglikes", help="model dir + features -> log-likelihood ark for latgen-faster-mapped")
    wl.add_argument("--model", required=True, help="model dir (dnn, dnn-onnx, dnn-torchscript, gmm)")
    source = wl.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data dir (utterances, <data>/<feature_type>.h5)")
    source.add_argument("--feats", help="feature archive (all its utterances)")
    wl.add_argument("--out", required=True, help="PATH.ark, ark:PATH or ark,scp:ARK,SCP")
    wl.add_argument("--scp", help="also write this scp")
    wl.add_argument("--device", default="cpu")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        if args.command == "import-ali":
            summary = import_pdf_alignments(
                args.ark,
                args.feats,
                args.out,
                num_pdfs=args.num_pdfs,
                model_dir=args.model,
                allow_extra=args.allow_extra,
                allow_pipes=not args.no_pipes,
            )
            print(
                f"{summary.out}: {summary.aligned} utterances, {summary.frames} frames, {summary.num_pdfs} pdfs; "
                f"{len(summary.unaligned)} without alignment, {len(summary.extra)} skipped"
            )
        elif args.command == "export-ali":
            print(export_pdf_alignments(args.ali, args.out))
        else:
            count = write_loglikes(
                args.model, args.out, data_dir=args.data, feats=args.feats, scp=args.scp, device=args.device
            )
            print(count)
    except AsrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
