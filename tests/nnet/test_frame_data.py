"""Features joined with alignments; frame-level shuffled loaders (in RAM and chunked from disk)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nnet_helpers import write_tiny_alignment, write_tiny_corpus, write_tiny_set

from asr.errors import InputError
from asr.features.archive import FeatureArchive
from asr.features.context_window import splice_at
from asr.nnet.alignments import PdfAlignment, read_pdf_alignment
from asr.nnet.frame_data import (
    ChunkedFrameLoader,
    InMemoryFrameLoader,
    concat_ranges,
    frames_of_utts,
    heldout_utt_mask,
    join_targets,
    load_training_data,
)


def test_concat_ranges():
    assert concat_ranges(np.array([5, 0, 9]), np.array([7, 0, 12])).tolist() == [5, 6, 9, 10, 11]
    assert concat_ranges(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).size == 0


def test_join_excludes_and_counts_failed_utterances(tmp_path):
    tiny = write_tiny_set(tmp_path / "train", num_utts=6)
    failed = [tiny.utt_ids[1], tiny.utt_ids[4]]
    alignment = read_pdf_alignment(write_tiny_alignment(tmp_path / "ali.h5", tiny, failed=failed))
    archive = FeatureArchive(tiny.archive)
    targets, stats = join_targets(archive, alignment, num_pdfs=16)
    assert stats.failed_utts == 2 and stats.aligned_utts == 4 and stats.unaligned_utts == 0
    mask = np.ones(len(targets), dtype=bool)
    for utt in failed:
        i = tiny.utt_ids.index(utt)
        mask[tiny.offsets[i] : tiny.offsets[i + 1]] = False
    assert np.all(targets[~mask] == -1)
    assert np.array_equal(targets[mask], tiny.pdf_ids[mask])
    assert stats.aligned_frames == mask.sum()
    frames = frames_of_utts(archive.offsets, np.ones(6, dtype=bool), targets)
    assert np.array_equal(frames, np.nonzero(mask)[0])
    with pytest.raises(InputError, match="out of range"):
        join_targets(archive, alignment, num_pdfs=3)


def test_join_by_utterance_id_and_its_errors(tmp_path):
    tiny = write_tiny_set(tmp_path / "train", num_utts=5)
    archive = FeatureArchive(tiny.archive)
    lens = np.diff(tiny.offsets)
    # a subset, in another order: joined by id
    keep = [3, 0]
    ali = PdfAlignment(
        tmp_path / "ali.h5",
        [tiny.utt_ids[i] for i in keep],
        np.concatenate([[0], np.cumsum(lens[keep])]),
        np.concatenate([tiny.pdf_ids[tiny.offsets[i] : tiny.offsets[i + 1]] for i in keep]),
    )
    targets, stats = join_targets(archive, ali)
    assert stats.aligned_utts == 2 and stats.unaligned_utts == 3
    for i in range(5):
        seg = targets[tiny.offsets[i] : tiny.offsets[i + 1]]
        expected = tiny.pdf_ids[tiny.offsets[i] : tiny.offsets[i + 1]] if i in keep else -1
        assert np.all(seg == expected)
    wrong_len = PdfAlignment(tmp_path / "ali.h5", [tiny.utt_ids[0]], np.array([0, lens[0] - 1]), np.zeros(lens[0] - 1))
    with pytest.raises(InputError, match=f"{tiny.utt_ids[0]}.*aligned frames") as err:
        join_targets(archive, wrong_len)
    assert err.value.path == str(tmp_path / "ali.h5")
    unknown = PdfAlignment(tmp_path / "ali.h5", ["nobody-1"], np.array([0, 3]), np.zeros(3, np.int32))
    with pytest.raises(InputError, match="nobody-1"):
        join_targets(archive, unknown)


def test_bad_alignment_file_is_an_input_error(tmp_path):
    path = tmp_path / "ali.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(InputError) as err:
        read_pdf_alignment(path)
    assert err.value.path == str(path)


def test_heldout_mask_is_seeded():
    a, b = heldout_utt_mask(100, 0.1, 3), heldout_utt_mask(100, 0.1, 3)
    assert np.array_equal(a, b) and a.sum() == 10
    assert not np.array_equal(a, heldout_utt_mask(100, 0.1, 4))
    assert heldout_utt_mask(5, 0.01, 0).sum() == 1 and heldout_utt_mask(1, 0.5, 0).sum() == 0


def _ram_loader(tiny, batch_size=16):
    targets = tiny.pdf_ids.astype(np.int64)
    frames = np.arange(len(targets))
    return InMemoryFrameLoader(tiny.feats, tiny.offsets, targets, frames, batch_size, 13, 12)


def _collect(epoch):
    xs, ys = zip(*list(epoch))
    return torch.cat(xs), torch.cat(ys)


def test_in_memory_epochs_visit_every_frame_once_deterministically(tmp_path):
    tiny = write_tiny_set(tmp_path / "train", num_utts=6)
    loader = _ram_loader(tiny)
    g = torch.Generator().manual_seed(7)
    epoch = loader.epoch(g)
    assert epoch.num_batches == -(-loader.num_frames // 16)
    x, y = _collect(epoch)
    assert x.shape == (loader.num_frames, 26 * 40)
    # every frame once: recover frame ids from the centre of each window
    centre = x[:, 13 * 40 : 14 * 40]
    feats = torch.from_numpy(tiny.feats)
    ids = torch.cdist(centre, feats).argmin(dim=1)
    assert sorted(ids.tolist()) == list(range(loader.num_frames))
    assert ids.tolist() != sorted(ids.tolist())  # shuffled
    assert torch.equal(y, torch.from_numpy(tiny.pdf_ids.astype(np.int64))[ids])
    assert torch.equal(x, splice_at(tiny.feats, tiny.offsets, ids, 13, 12))
    # the same generator state gives the same order; a resumed epoch gives the tail of the same batches
    x2, _ = _collect(loader.epoch(torch.Generator().manual_seed(7)))
    assert torch.equal(x, x2)
    tail, _ = _collect(loader.epoch(torch.Generator().manual_seed(7), start_batch=5))
    assert torch.equal(tail, x[5 * 16 :])
    # the next epoch (generator advanced) is another order
    x3, _ = _collect(loader.epoch(g))
    assert not torch.equal(x, x3)


def test_chunked_loader_matches_the_frames_and_resumes(tmp_path):
    tiny = write_tiny_set(tmp_path / "train", num_utts=20)
    targets = tiny.pdf_ids.astype(np.int64)
    frames = np.arange(len(targets))[::2]  # a subset of frames, as after holding out / failures
    loader = ChunkedFrameLoader(tiny.archive, targets, frames, 8, buffer_frames=200, chunk_frames=90)
    assert len(loader.chunks) > 3
    epoch = loader.epoch(torch.Generator().manual_seed(1))
    x, y = _collect(epoch)
    centre = x[:, 13 * 40 : 14 * 40]
    ids = torch.cdist(centre, torch.from_numpy(tiny.feats)).argmin(dim=1)
    assert sorted(ids.tolist()) == frames.tolist()
    assert torch.equal(x, splice_at(tiny.feats, tiny.offsets, ids, 13, 12))  # windows stay in their utterance
    assert torch.equal(y, torch.from_numpy(targets)[ids])
    for start in (0, 3, epoch.num_batches - 1, epoch.num_batches):
        again = loader.epoch(torch.Generator().manual_seed(1), start_batch=start)
        batches = list(again)
        assert len(batches) == epoch.num_batches - start
        if batches:
            tail = torch.cat([b[0] for b in batches])
            assert torch.equal(tail, x[len(x) - len(tail) :])
    no_prefetch = ChunkedFrameLoader(tiny.archive, targets, frames, 8, 200, 90, prefetch=False)
    x_np, _ = _collect(no_prefetch.epoch(torch.Generator().manual_seed(1)))
    assert torch.equal(x, x_np)


def test_load_training_data_in_ram_or_from_disk(tmp_path):
    train, dev, gmm_dir = write_tiny_corpus(tmp_path, num_train=15, dev_alignment=True)
    alignment = read_pdf_alignment(gmm_dir / "ali.h5")
    ram = load_training_data(train.archive, alignment, 16, batch_size=32, seed=0, heldout_fraction=0.2)
    assert ram.in_memory and ram.heldout is not None
    assert ram.pdf_counts.sum() == len(train.pdf_ids)
    held = ram.heldout.num_frames
    assert ram.loader.num_frames + held == len(train.pdf_ids)
    np.testing.assert_allclose(ram.feat_mean, train.feats.mean(axis=0), rtol=1e-5, atol=1e-5)
    disk = load_training_data(
        train.archive, alignment, 16, batch_size=32, seed=0, heldout_fraction=0.2, ram_budget_bytes=1000
    )
    assert not disk.in_memory and isinstance(disk.loader, ChunkedFrameLoader)
    assert disk.loader.num_frames == ram.loader.num_frames and disk.heldout.num_frames == held
    assert torch.equal(disk.heldout.feats, ram.heldout.feats)
    np.testing.assert_allclose(disk.feat_std, ram.feat_std, rtol=1e-6)
    with_dev = load_training_data(
        train.archive, alignment, 16, 32, 0, heldout_archive=dev.archive,
        heldout_alignment=read_pdf_alignment(gmm_dir / "ali_dev.h5"),
    )  # fmt: skip
    assert with_dev.heldout.num_frames == len(dev.pdf_ids) and with_dev.loader.num_frames == len(train.pdf_ids)
