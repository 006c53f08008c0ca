"""WER scoring against hand-counted cases."""

from __future__ import annotations

import json

import pytest

from asr.errors import InputError
from asr.score import read_text, score_texts, score_utterance, write_per_utt, write_results_json


def test_hand_counted_utterance():
    # ref: A B C D ; hyp: A X C D E -> 1 sub (B->X), 1 ins (E)
    u = score_utterance("u1", "A B C D".split(), "A X C D E".split())
    assert (u.sub, u.ins, u.dels) == (1, 1, 0)


def test_deletions_and_empty_hypothesis():
    u = score_utterance("u", "ONE TWO THREE".split(), [])
    assert (u.sub, u.ins, u.dels) == (0, 0, 3)
    u = score_utterance("u", [], "ONE".split())
    assert (u.sub, u.ins, u.dels) == (0, 1, 0)


def test_totals_ser_and_missing_hypothesis():
    refs = {"a": "YES NO".split(), "b": "GO".split(), "c": "STOP NOW".split()}
    hyps = {"a": "YES NO".split(), "b": "NO".split()}  # c missing
    s = score_texts(refs, hyps)
    assert s.words == 5
    assert (s.ins, s.dels, s.sub) == (0, 2, 1)
    assert s.wer == pytest.approx(60.0)
    assert s.utts == 3 and s.utts_with_errors == 2
    assert s.ser == pytest.approx(200 / 3)
    assert s.missing == ["c"]
    assert "%WER 60.00 [ 3 / 5, 0 ins, 2 del, 1 sub ]" in s.summary()


def test_hypothesis_without_reference_is_an_error():
    with pytest.raises(InputError, match="no reference"):
        score_texts({"a": ["X"]}, {"a": ["X"], "zz": ["Y"]})


def test_files_report_and_results_json(tmp_path):
    (tmp_path / "ref").write_text("u1 A B C\nu2 D E\n")
    (tmp_path / "hyp").write_text("u1 A C\nu2\n")
    s = score_texts(read_text(tmp_path / "ref"), read_text(tmp_path / "hyp"))
    assert (s.ins, s.dels, s.sub, s.words) == (0, 3, 0, 5)
    write_per_utt(s, tmp_path / "per_utt.txt")
    report = (tmp_path / "per_utt.txt").read_text()
    assert "u1 #csid 2 0 0 1" in report and "u2 #csid 0 0 0 2" in report
    res = write_results_json(tmp_path / "results.json", s, corpus="x", set="dev", system="gmm")
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == res
    assert on_disk["wer"] == 60.0 and on_disk["del"] == 3 and on_disk["corpus"] == "x"


def test_bad_text_line_names_file_and_line(tmp_path):
    (tmp_path / "ref").write_bytes(b"u1 A\nu2 \xff\xfe\n")
    with pytest.raises(InputError, match=r"ref:2:"):
        read_text(tmp_path / "ref")
