"""Question generation (Kaldi cluster-phones style) and question files."""

from __future__ import annotations

import numpy as np
import pytest

from asr.errors import InputError
from asr.hmm.questions import (
    QuestionSet,
    build_question_set,
    cluster_top_down,
    generate_phone_questions,
    pdf_class_questions,
    read_phone_symbols,
    read_questions,
    write_questions,
)
from asr.hmm.tree import TreeStats


def _two_cluster_stats(seed: int = 0, frames_per_phone: int = 400) -> TreeStats:
    """Phones 1..10: phones 1, 3, 5, 7, 9 near one mean, 2, 4, 6, 8, 10 near a far one; 3 pdf-classes."""
    rng = np.random.default_rng(seed)
    dim = 4
    centre_a, centre_b = np.zeros(dim), np.full(dim, 6.0)
    rows = []
    for p in range(1, 11):
        mean = (centre_a if p % 2 else centre_b) + rng.normal(scale=0.3, size=dim)
        n = frames_per_phone
        feats = mean + rng.normal(size=(n, dim))
        left = rng.integers(0, 11, size=n)
        right = rng.integers(0, 11, size=n)
        state = rng.integers(0, 3, size=n)
        rows.append((left, np.full(n, p), right, state, feats))
    cols = [np.concatenate([r[i] for r in rows]) for i in range(5)]
    return TreeStats.from_frames(*cols)


def test_clusters_put_similar_phones_together():
    stats = _two_cluster_stats()
    questions = generate_phone_questions(stats)
    assert questions[0] == tuple(range(1, 11))  # the root
    assert (1, 3, 5, 7, 9) in questions
    assert (2, 4, 6, 8, 10) in questions
    # a full binary hierarchy down to single phones: 2n - 1 nodes, every phone alone once
    assert len(questions) == 19
    for p in range(1, 11):
        assert (p,) in questions


def test_cluster_hierarchy_is_nested_binary_partition():
    rng = np.random.default_rng(3)
    n, dim = 9, 3
    count = rng.integers(50, 500, size=n).astype(float)
    means = rng.normal(size=(n, dim)) * 3
    sums = means * count[:, None]
    sumsqs = (means**2 + 1.0) * count[:, None]
    nodes = cluster_top_down(count, sums, sumsqs, seed=1)
    assert nodes[0] == tuple(range(n))
    node_sets = [set(x) for x in nodes]
    for i, s in enumerate(node_sets):
        if len(s) == 1:
            continue
        children = [t for t in node_sets[i + 1 :] if t < s and not any(t < u < s for u in node_sets)]
        assert len(children) == 2 and children[0] | children[1] == s and not children[0] & children[1]
    # deterministic for a given seed
    assert cluster_top_down(count, sums, sumsqs, seed=1) == nodes


def test_deterministic_start_alone_finds_the_clusters():
    # 6 items: three at 0, three at 10 (1-D); no random starts. The first split must separate them.
    count = np.full(6, 100.0)
    means = np.array([0.0, 0.1, 10.0, 0.2, 10.1, 9.9])[:, None]
    nodes = cluster_top_down(count, means * 100, (means**2 + 1) * 100, num_tries=0)
    assert nodes[1] in {(0, 1, 3), (2, 4, 5)}
    assert {(0, 1, 3), (2, 4, 5)} <= set(nodes)


def test_pdf_class_questions():
    assert pdf_class_questions(1) == []
    assert pdf_class_questions(3) == [(0,), (0, 1)]
    assert pdf_class_questions(5) == [(0,), (0, 1), (0, 1, 2), (0, 1, 2, 3)]


def test_build_question_set_silence_boundary_extra():
    stats = _two_cluster_stats()
    qs = build_question_set(stats, max_num_pdf_classes=5, silence_phones=[1, 2], extra_questions=[[4, 8], [8, 4]])
    assert (1, 2) in qs.phone_questions
    assert tuple(range(3, 11)) in qs.phone_questions
    assert (0,) in qs.phone_questions and (0, 1, 2) in qs.phone_questions
    assert qs.phone_questions.count((4, 8)) == 1  # deduplicated
    assert qs.pdf_class_questions == ((0,), (0, 1), (0, 1, 2), (0, 1, 2, 3))
    # silence left out of the clustering: no automatic question mixes silence with speech
    qs2 = build_question_set(stats, max_num_pdf_classes=3, silence_phones=[1, 2], cluster_silence=False)
    for q in qs2.phone_questions:
        if set(q) & {1, 2} and set(q) - {0, 1, 2}:
            pytest.fail(f"question {q} mixes silence and speech")
    assert (3, 5, 7, 9) in qs2.phone_questions
    qs3 = build_question_set(stats, max_num_pdf_classes=3, boundary_questions=False)
    assert all(0 not in q for q in qs3.phone_questions)


def test_phone_sets_are_clustered_as_units_and_empty_sets_kept(caplog):
    stats = _two_cluster_stats()
    sets = [[1, 3], [5], [7, 9], [2, 4, 6], [8], [10], [11]]  # phone 11 has no frames
    questions = generate_phone_questions(stats, sets)
    for q in questions:
        for unit in sets:
            assert set(unit) <= set(q) or not set(unit) & set(q), f"{q} splits the unit {unit}"
    assert (11,) in questions
    assert "no statistics" in caplog.text
    with pytest.raises(ValueError, match="phone 1 is in phone sets"):
        generate_phone_questions(stats, [[1, 2], [1]])


def test_read_questions_ids_and_symbols(tmp_path):
    path = tmp_path / "extra.txt"
    path.write_text("1 2\nAH B\n")
    assert read_questions(path, {"AH": 3, "B": 4}) == [(1, 2), (3, 4)]
    out = tmp_path / "out.txt"
    write_questions(out, [(1, 2), (3, 4)], {1: "SIL", 2: "SPN", 3: "AH", 4: "B"})
    assert out.read_text() == "SIL SPN\nAH B\n"
    assert read_questions(out, {"SIL": 1, "SPN": 2, "AH": 3, "B": 4}) == [(1, 2), (3, 4)]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1 2\n\n3\n", 2, "empty line"),
        ("1 2\n3 X\n", 2, "unknown phone symbol"),
        ("1 -2\n", 1, "negative"),
        ("1 2\n3 3\n", 2, "repeated"),
    ],
)
def test_read_questions_errors(tmp_path, text, line, message):
    path = tmp_path / "q.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        read_questions(path, {"A": 5})
    assert err.value.path == str(path) and err.value.line == line


def test_read_questions_without_symbols_rejects_names(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("1 AH\n")
    with pytest.raises(InputError, match="not an integer") as err:
        read_questions(path)
    assert err.value.line == 1


def test_question_set_round_trip_and_errors(tmp_path):
    qs = QuestionSet(phone_questions=((0,), (1, 2), (3, 4, 5)), pdf_class_questions=((0,), (0, 1)))
    path = tmp_path / "questions.json"
    qs.save(path)
    assert QuestionSet.load(path) == qs
    assert path.read_text().count("\n") > 6  # one question per line, readable
    empty = QuestionSet((), ())
    empty.save(path)
    assert QuestionSet.load(path) == empty
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "asr.questions",\n "phone_questions": [[1, "x"]], "pdf_class_questions": []}')
    with pytest.raises(InputError, match="not a list of integers") as err:
        QuestionSet.load(bad)
    assert err.value.path == str(bad)
    bad.write_text('{"format": "asr.questions",\n "phone_questions": [[1, 2]\n')
    with pytest.raises(InputError, match="not valid JSON") as err:
        QuestionSet.load(bad)
    assert err.value.line is not None
    bad.write_text('{"phone_questions": []}')
    with pytest.raises(InputError, match="format tag"):
        QuestionSet.load(bad)


def test_read_phone_symbols(tmp_path):
    path = tmp_path / "phones.txt"
    path.write_text("<eps> 0\nSIL 1\nSPN 2\nAH 3\n")
    assert read_phone_symbols(path) == {"<eps>": 0, "SIL": 1, "SPN": 2, "AH": 3}
    path.write_text("<eps> 0\nSIL one\n")
    with pytest.raises(InputError, match="not an integer") as err:
        read_phone_symbols(path)
    assert err.value.line == 2
    path.write_text("<eps> 0\nSIL 1\nSIL 2\n")
    with pytest.raises(InputError, match="repeated") as err:
        read_phone_symbols(path)
    assert err.value.line == 3
