"""Tree statistics, decision-tree building and the context dependency objects."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from asr.errors import ConfigError, InputError
from asr.hmm.questions import QuestionSet, build_question_set
from asr.hmm.tree import (
    KEY_CENTRE,
    KEY_LEFT,
    ContextDependency,
    ContextDependencyTree,
    LeafNode,
    MonophoneContextDependency,
    RootSpec,
    SplitNode,
    TableNode,
    TreeBuildOptions,
    TreeStats,
    accumulate_tree_stats,
    build_tree,
    gaussian_objf,
    load_context_dependency,
    main,
    make_roots,
    phone_contexts,
    read_roots,
    suggest_max_leaves,
    suggest_tree_options,
    write_roots,
)

PHONES = list(range(1, 13))
PLANTED = [7, 9, 11]


def _random_frames(seed: int, n: int, phones=PHONES, num_states: dict | int = 3, dim: int = 2, scale: float = 3.0):
    """Random (left, centre, right, pdf_class) per frame; features = per-phone mean + unit noise."""
    rng = np.random.default_rng(seed)
    phones = np.asarray(phones)
    centre = rng.choice(phones, n)
    left = rng.choice(np.r_[0, phones], n)
    right = rng.choice(np.r_[0, phones], n)
    states = np.array(
        [num_states.get(p, 1) if isinstance(num_states, dict) else num_states for p in range(phones.max() + 1)]
    )
    pdf_class = (rng.random(n) * states[centre]).astype(np.int64)
    means = rng.normal(size=(phones.max() + 1, dim)) * scale
    feats = means[centre] + rng.normal(size=(n, dim))
    return left, centre, right, pdf_class, feats


def _planted(seed: int = 0, n: int = 60000):
    """Phone 5, state 1 has a shifted mean when the left phone is in {7, 9, 11}."""
    left, centre, right, pdf_class, feats = _random_frames(seed, n)
    planted = (centre == 5) & (pdf_class == 1) & np.isin(left, PLANTED)
    feats[planted] += [3.0, -3.0]
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=3, extra_questions=[PLANTED])
    return stats, questions, (left, centre, right, pdf_class, feats), planted


NUM_PDF_CLASSES = {p: 3 for p in PHONES}


def _all_windows(phones, num_pdf_classes):
    context = [0, *phones]
    rows = [
        (left, c, right, j) for c in phones for j in range(num_pdf_classes[c]) for left in context for right in context
    ]
    arr = np.array(rows)
    return arr[:, :3], arr[:, 3]


# ----------------------------------------------------------------------------------------------------
# statistics


def test_phone_contexts_use_neighbouring_segments_and_boundaries():
    phones = np.array([1, 1, 3, 3, 3, 4, 1, 5, 5])
    left, right = phone_contexts(phones, np.array([0, 6, 9]))
    assert left.tolist() == [0, 0, 1, 1, 1, 3, 0, 1, 1]
    assert right.tolist() == [3, 3, 4, 4, 4, 0, 5, 0, 0]
    # a repeated phone is one segment unless segment_starts says otherwise
    same = np.array([2, 2, 2, 2])
    assert [x.tolist() for x in phone_contexts(same)] == [[0, 0, 0, 0], [0, 0, 0, 0]]
    starts = np.array([True, False, True, False])
    assert [x.tolist() for x in phone_contexts(same, segment_starts=starts)] == [[0, 0, 2, 2], [2, 2, 0, 0]]
    # empty utterances are fine
    left, right = phone_contexts(np.array([6, 7, 7]), np.array([0, 0, 3, 3]))
    assert left.tolist() == [0, 6, 6] and right.tolist() == [7, 0, 0]
    with pytest.raises(ValueError, match="<= 0"):
        phone_contexts(np.array([1, 0, 2]))
    with pytest.raises(ValueError, match="offsets"):
        phone_contexts(np.array([1, 2]), np.array([0, 3]))


def test_accumulation_matches_a_python_loop():
    rng = np.random.default_rng(1)
    phones = rng.choice([1, 2, 3, 4], size=500)
    pdf_class = rng.integers(0, 3, size=500)
    feats = rng.normal(size=(500, 3)).astype(np.float32)
    offsets = np.array([0, 120, 300, 500])
    stats = accumulate_tree_stats(phones, pdf_class, feats, offsets)
    left, right = phone_contexts(phones, offsets)
    expected: dict[tuple, list] = {}
    for t in range(500):
        key = (int(left[t]), int(phones[t]), int(right[t]), int(pdf_class[t]))
        acc = expected.setdefault(key, [0.0, np.zeros(3), np.zeros(3)])
        x = feats[t].astype(np.float64)
        acc[0] += 1
        acc[1] += x
        acc[2] += x * x
    assert stats.num_keys == len(expected)
    assert stats.total_count == 500
    for i, key in enumerate(map(tuple, stats.keys.tolist())):
        c, s, ss = expected[key]
        assert stats.count[i] == c
        np.testing.assert_allclose(stats.sums[i], s, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(stats.sumsqs[i], ss, rtol=1e-12, atol=1e-9)
    # chunked accumulation and merging give the same statistics
    chunked = TreeStats.from_frames(left, phones, right, pdf_class, feats, chunk_frames=37)
    merged = TreeStats.from_frames(left[:200], phones[:200], right[:200], pdf_class[:200], feats[:200]).merge(
        TreeStats.from_frames(left[200:], phones[200:], right[200:], pdf_class[200:], feats[200:])
    )
    for other in (chunked, merged):
        np.testing.assert_array_equal(other.keys, stats.keys)
        np.testing.assert_allclose(other.sums, stats.sums, atol=1e-9)
        np.testing.assert_allclose(other.sumsqs, stats.sumsqs, atol=1e-9)


def test_stats_save_load_and_errors(tmp_path):
    stats, *_ = _planted(n=3000)
    path = tmp_path / "treeacc.npz"
    stats.save(path)
    back = TreeStats.load(path)
    np.testing.assert_array_equal(back.keys, stats.keys)
    np.testing.assert_array_equal(back.sums, stats.sums)
    path.write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="cannot read") as err:
        TreeStats.load(path)
    assert err.value.path == str(path)
    np.savez(path, format=np.array("asr.tree_stats"), keys=np.zeros((2, 4)), count=np.ones(2))
    with pytest.raises(InputError, match="missing"):
        TreeStats.load(path)
    with pytest.raises(ValueError, match="negative left"):
        TreeStats.from_frames(np.array([-1]), np.array([1]), np.array([0]), np.array([0]), np.zeros((1, 2)))


def test_gaussian_objf_split_gain_never_negative():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = rng.integers(2, 40)
        x = rng.normal(size=(n, 3)) * rng.choice([0.01, 0.1, 3.0])  # variances below and above the floor
        yes = rng.random(n) < 0.5
        if yes.all() or not yes.any():
            continue

        def objf(rows):
            return gaussian_objf(rows.shape[0], rows.sum(0), (rows**2).sum(0))

        assert objf(x[yes]) + objf(x[~yes]) - objf(x) >= -1e-9


# ----------------------------------------------------------------------------------------------------
# building


def test_planted_split_is_found_first_with_the_right_counts():
    stats, questions, (left, centre, right, pdf_class, feats), planted = _planted()
    tree = build_tree(stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(min_gain=50, cluster_thresh=None))
    first = tree.build_info["splits"][0]
    assert (first["root"], first["key"], first["yes"]) == ([5], "left", PLANTED)
    in_set = (centre == 5) & np.isin(left, PLANTED)
    assert first["yes_count"] == in_set.sum()
    assert first["no_count"] == (centre == 5).sum() - in_set.sum()
    # then the two pdf-class questions isolate state 1; nothing else is worth 50 nats
    assert [s["key"] for s in tree.build_info["splits"]] == ["left", "pdf_class", "pdf_class"]
    assert tree.num_pdfs == 12 + 3
    shifted = tree.compute([7, 5, 0], 1)
    assert tree.pdf_occs[shifted] == planted.sum()
    assert {tree.compute([lft, 5, r], 1) for lft in PLANTED for r in (0, 3, 7)} == {shifted}
    unshifted = {tree.compute([lft, 5, r], j) for lft in (0, 1, 8) for r in (0, 3) for j in range(3)}
    assert len(unshifted) == 1 and shifted not in unshifted
    assert tree.pdf_occs[unshifted.pop()] == ((centre == 5) & ~np.isin(left, PLANTED)).sum()
    # the leaf Gaussian of the planted pdf is the planted frames' Gaussian
    means, variances = tree.leaf_stats(stats).means_vars()
    np.testing.assert_allclose(means[shifted], feats[planted].mean(0), atol=1e-9)
    np.testing.assert_allclose(variances[shifted], feats[planted].var(0), atol=1e-9)


def test_merging_joins_identical_leaves_of_a_root():
    stats, questions, *_ = _planted()
    tree = build_tree(stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(min_gain=50))  # cluster_thresh -1
    info = tree.build_info
    assert info["cluster_thresh_used"] == info["smallest_split_gain"] > 0
    # left-in-set states 0 and 2 are the same Gaussian as the rest of phone 5: merged back
    assert info["num_merges"] == 2 and tree.num_pdfs == 13 and tree.num_leaves == 15
    assert len(set(tree.pdfs_for(5, 0) + tree.pdfs_for(5, 1) + tree.pdfs_for(5, 2))) == 2
    assert info["objf_final"] <= info["objf_after_split"]


def test_merge_scope_root_versus_global():
    left, centre, right, pdf_class, feats = _random_frames(2, 20000)
    rng = np.random.default_rng(5)
    feats[centre == 4] = feats[centre == 3].mean(0) + rng.normal(size=((centre == 4).sum(), 2))  # phone 4 = phone 3
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=3)
    options = dict(min_gain=1e12, cluster_thresh=100.0)  # no splits; merge what costs < 100 nats
    by_root = build_tree(stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(**options))
    assert by_root.num_pdfs == 12
    merged = build_tree(stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(cluster_scope="global", **options))
    assert merged.num_pdfs == 11
    assert merged.compute([0, 3, 0], 0) == merged.compute([5, 4, 1], 2)
    assert merged.compute([0, 3, 0], 0) != merged.compute([0, 5, 0], 0)


def test_max_leaves_and_min_count_are_respected():
    stats, questions, *_ = _planted()
    tree = build_tree(
        stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(max_leaves=20, min_gain=0, cluster_thresh=None)
    )
    assert tree.num_leaves == tree.num_pdfs == 20
    free = build_tree(
        stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(min_gain=0, min_count=0, cluster_thresh=None)
    )
    min_count = 300.0
    assert free.pdf_occs.min() < min_count  # without the limit some leaves are smaller
    limited = build_tree(
        stats,
        questions,
        NUM_PDF_CLASSES,
        options=TreeBuildOptions(min_gain=0, min_count=min_count, cluster_thresh=None),
    )
    assert limited.pdf_occs.min() >= min_count
    assert all(s["yes_count"] >= min_count and s["no_count"] >= min_count for s in limited.build_info["splits"])
    assert limited.num_pdfs > 12 * 3  # still grew


def test_gains_are_non_negative_and_likelihood_grows_with_leaves():
    stats, questions, *_ = _planted(seed=3, n=20000)
    previous = -np.inf
    for max_leaves in (12, 14, 20, 40, 80, 160):
        tree = build_tree(
            stats,
            questions,
            NUM_PDF_CLASSES,
            options=TreeBuildOptions(max_leaves=max_leaves, min_gain=0, min_count=0, cluster_thresh=None),
        )
        gains = [s["gain"] for s in tree.build_info["splits"]]
        assert all(g >= 0 for g in gains)
        ls = tree.leaf_stats(stats)
        total = float(gaussian_objf(ls.count, ls.sums, ls.sumsqs).sum())
        assert total == pytest.approx(tree.build_info["objf_after_split"], rel=1e-9, abs=1e-3)
        assert total == pytest.approx(tree.build_info["objf_initial"] + sum(gains), rel=1e-9, abs=1e-2)
        assert total >= previous - 1e-6
        previous = total


def test_shared_root_gives_silence_and_noise_the_same_pdfs():
    num_pdf_classes = {1: 5, 2: 5, **{p: 3 for p in range(3, 9)}}
    left, centre, right, pdf_class, feats = _random_frames(4, 30000, phones=range(1, 9), num_states=num_pdf_classes)
    rng = np.random.default_rng(9)
    state_means = np.arange(5)[:, None] * np.array([4.0, -4.0])  # well apart
    sil = np.isin(centre, [1, 2])
    feats[sil] = state_means[pdf_class[sil]] + rng.normal(size=(sil.sum(), 2))  # SIL and SPN: one distribution
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=5, silence_phones=[1, 2])
    options = TreeBuildOptions(min_gain=50)
    shared = build_tree(stats, questions, num_pdf_classes, make_roots(num_pdf_classes, [[1, 2]]), options)
    for j in range(5):
        assert shared.pdfs_for(1, j) == shared.pdfs_for(2, j)
    assert len({shared.pdfs_for(1, j)[0] for j in range(5)}) == 5  # states split by pdf-class questions
    windows, classes = _all_windows(range(1, 9), num_pdf_classes)
    sil_rows = windows[:, 1] == 1
    as_spn = windows[sil_rows].copy()
    as_spn[:, 1] = 2
    np.testing.assert_array_equal(
        shared.compute_many(windows[sil_rows], classes[sil_rows]), shared.compute_many(as_spn, classes[sil_rows])
    )
    separate = build_tree(stats, questions, num_pdf_classes, make_roots(num_pdf_classes), options)
    assert not set(separate.pdfs_for(1, 0)) & set(separate.pdfs_for(2, 0))


def test_not_split_root_has_one_pdf_per_state_despite_context_effects():
    left, centre, right, pdf_class, feats = _random_frames(6, 30000)
    feats[(centre == 1) & (left == 3)] += 5.0  # strong context effect on phone 1
    feats[(centre == 2) & (left == 3)] += 5.0
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=3)
    roots = make_roots(PHONES, unsplit_phones=[1])
    assert roots[0] == RootSpec((1,), shared=False, split=False)
    tree = build_tree(stats, questions, NUM_PDF_CLASSES, roots, TreeBuildOptions(min_gain=50, cluster_thresh=None))
    assert [len(tree.pdfs_for(1, j)) for j in range(3)] == [1, 1, 1]
    assert len({tree.pdfs_for(1, j)[0] for j in range(3)}) == 3
    assert len(set(tree.pdfs_for(2, 0))) == 2  # the splittable phone did split on the left context


def test_boundary_context_zero():
    left, centre, right, pdf_class, feats = _random_frames(7, 40000)
    feats[(centre == 3) & (pdf_class == 0) & (left == 0)] += 4.0  # phone 3 sounds different utterance-initially
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=3)
    tree = build_tree(stats, questions, NUM_PDF_CLASSES, options=TreeBuildOptions(min_gain=50, cluster_thresh=None))
    assert set(tree.build_info["splits"][0]["yes"]) in ({0}, set(PHONES))  # {0} or its complement
    initial = tree.compute([0, 3, 5], 0)
    assert {tree.compute([0, 3, r], 0) for r in [0, *PHONES]} == {initial}
    assert all(tree.compute([p, 3, 5], 0) != initial for p in PHONES)
    assert tree.compute_many(np.array([[0, 3, 0], [4, 3, 0]]), np.array([0, 0])).tolist() == [
        initial,
        tree.compute([4, 3, 0], 0),
    ]


def _context_rich_tree(seed: int = 8):
    phones = list(range(1, 7))
    num_pdf_classes = {p: 3 for p in phones}
    left, centre, right, pdf_class, feats = _random_frames(seed, 40000, phones=phones, dim=3)
    rng = np.random.default_rng(seed)
    effect_left = rng.normal(size=(7, 3)) * 1.5
    effect_right = rng.normal(size=(7, 3)) * 1.5
    feats += effect_left[left] * (pdf_class == 0)[:, None] + effect_right[right] * (pdf_class == 2)[:, None]
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    questions = build_question_set(stats, max_num_pdf_classes=3, silence_phones=[1])
    roots = make_roots(num_pdf_classes, [[1, 2]])
    options = TreeBuildOptions(max_leaves=150, min_gain=0, min_count=20)
    return build_tree(stats, questions, num_pdf_classes, roots, options), phones, num_pdf_classes, stats


def test_compute_agrees_with_compute_many_and_pdfs_for_is_exact():
    tree, phones, num_pdf_classes, _ = _context_rich_tree()
    assert isinstance(tree, ContextDependency)
    assert tree.context_width == 3 and tree.central_position == 1
    assert tree.build_info["splits"] and {s["key"] for s in tree.build_info["splits"]} >= {"left", "right"}
    windows, classes = _all_windows(phones, num_pdf_classes)
    many = tree.compute_many(windows, classes)
    one_by_one = [tree.compute(w.tolist(), int(j)) for w, j in zip(windows, classes, strict=True)]
    assert many.tolist() == one_by_one
    assert sorted(set(many.tolist())) == list(range(tree.num_pdfs))  # contiguous and all reachable
    for p in phones:
        for j in range(3):
            rows = (windows[:, 1] == p) & (classes == j)
            assert tree.pdfs_for(p, j) == sorted(set(many[rows].tolist())), (p, j)
    with pytest.raises(ValueError, match="not in the tree"):
        tree.compute_many(np.array([[0, 9, 0]]), np.array([0]))
    with pytest.raises(ValueError, match="pdf_class 3 invalid"):
        tree.compute_many(np.array([[0, 2, 0]]), np.array([3]))
    with pytest.raises(ValueError, match="not in the tree"):
        tree.compute([0, 0, 1], 0)
    # a context phone outside the tree answers "no" to every question
    assert tree.compute([99, 3, 0], 1) == tree.compute_many(np.array([[99, 3, 0]]), np.array([1]))[0]


def test_json_round_trip_and_show(tmp_path, capsys):
    tree, phones, num_pdf_classes, stats = _context_rich_tree()
    path = tmp_path / "tree.json"
    tree.save(path)
    text = path.read_text()
    assert '"type": "tree"' in text and text.count("\n") > len(tree.nodes)  # one node per line
    back = ContextDependencyTree.load(path)
    assert back.nodes == tree.nodes and back.num_pdfs == tree.num_pdfs and back.roots == tree.roots
    assert back.build_info["splits"] == tree.build_info["splits"]
    windows, classes = _all_windows(phones, num_pdf_classes)
    np.testing.assert_array_equal(back.compute_many(windows, classes), tree.compute_many(windows, classes))
    np.testing.assert_allclose(back.pdf_occs, tree.pdf_occs, atol=1e-3)
    assert isinstance(load_context_dependency(path), ContextDependencyTree)
    phones_txt = tmp_path / "phones.txt"
    phones_txt.write_text("<eps> 0\nSIL 1\nSPN 2\nAA 3\nB 4\nC 5\nD 6\n#0 7\n")
    assert main(["show", str(path), "--phones", str(phones_txt), "--draw"]) == 0
    out = capsys.readouterr().out
    assert f"num_pdfs {tree.num_pdfs}" in out
    assert "root: shared split SIL SPN" in out
    assert "questions used:" in out and "pdfs per phone" in out and "<bnd>" in out
    assert out.count("pdf ") >= tree.num_leaves


def test_malformed_tree_files_raise_input_error_naming_the_file(tmp_path):
    tree, *_ = _context_rich_tree()
    good = tree.to_json_dict()
    path = tmp_path / "tree.json"

    def expect(data_or_text, message):
        path.write_text(data_or_text if isinstance(data_or_text, str) else json.dumps(data_or_text))
        with pytest.raises(InputError, match=message) as err:
            load_context_dependency(path)
        assert err.value.path == str(path)
        return err.value

    assert expect('{"format": "asr.context_dependency",\n "version": 1,\n', "not valid JSON").line is not None
    expect({**good, "format": "kaldi"}, "format tag")
    expect({**good, "version": 7}, "unsupported version")
    expect({**good, "type": "lattice"}, "unknown context dependency type")
    nodes = [dict(n) for n in good["nodes"]]
    split = next(i for i, n in enumerate(nodes) if "yes" in n)
    nodes[split]["then"] = 0
    expect({**good, "nodes": nodes}, "not a later node")
    nodes = [dict(n) for n in good["nodes"]]
    leaf = next(i for i, n in enumerate(nodes) if "pdf" in n)
    nodes[leaf]["pdf"] = tree.num_pdfs + 5
    expect({**good, "nodes": nodes}, "without gaps")
    expect({**good, "num_pdfs": tree.num_pdfs + 1}, "num_pdfs")
    expect({**good, "nodes": good["nodes"][:-1]}, "child")
    expect({k: v for k, v in good.items() if k != "roots"}, "roots")


def test_build_tree_input_errors():
    stats, questions, *_ = _planted(n=2000)
    with pytest.raises(InputError, match="centre phone 12 not in num_pdf_classes"):
        build_tree(stats, questions, {p: 3 for p in range(1, 12)})
    with pytest.raises(InputError, match="pdf_class 2 for phone"):
        build_tree(stats, questions, {p: 2 for p in PHONES})
    with pytest.raises(InputError, match="in two roots"):
        build_tree(stats, questions, NUM_PDF_CLASSES, [RootSpec((1, 2)), *make_roots(range(2, 13))])
    with pytest.raises(InputError, match="in no root"):
        build_tree(stats, questions, NUM_PDF_CLASSES, make_roots(range(1, 12)))
    with pytest.raises(ConfigError):
        TreeBuildOptions(cluster_scope="everywhere")


def test_phones_without_data_still_get_pdfs():
    stats, questions, *_ = _planted(n=5000)
    num_pdf_classes = {**NUM_PDF_CLASSES, 13: 3, 14: 5}
    roots = make_roots(num_pdf_classes, unsplit_phones=[14])
    tree = build_tree(stats, questions, num_pdf_classes, roots, TreeBuildOptions(min_gain=50))
    assert len(tree.pdfs_for(13, 0)) == 1 and tree.pdfs_for(13, 0) == tree.pdfs_for(13, 2)  # one shared stub
    assert len({tree.compute([0, 14, 0], j) for j in range(5)}) == 5
    assert tree.leaf_stats(stats).count[tree.compute([0, 13, 0], 0)] == 0


def test_monophone_context_dependency(tmp_path):
    num_pdf_classes = {1: 5, 2: 5, 3: 3, 4: 3}
    mono = MonophoneContextDependency(num_pdf_classes, shared_phone_sets=[[1, 2]])
    assert isinstance(mono, ContextDependency)
    assert mono.context_width == 1 and mono.central_position == 0
    assert mono.num_pdfs == 5 + 3 + 3
    assert [mono.compute([1], j) for j in range(5)] == [mono.compute([2], j) for j in range(5)] == [0, 1, 2, 3, 4]
    assert [mono.compute([4], j) for j in range(3)] == [8, 9, 10]
    windows = np.array([[1], [2], [3], [4], [4]])
    classes = np.array([4, 0, 2, 0, 2])
    assert mono.compute_many(windows, classes).tolist() == [
        mono.compute([int(w[0])], int(j)) for w, j in zip(windows, classes)
    ]
    assert mono.pdfs_for(3, 1) == [6]
    with pytest.raises(ValueError, match="invalid"):
        mono.compute([3], 3)
    with pytest.raises(ValueError, match="not in the model"):
        mono.compute_many(np.array([[7]]), np.array([0]))
    path = tmp_path / "mono.json"
    mono.save(path)
    back = load_context_dependency(path)
    assert isinstance(back, MonophoneContextDependency) and back.pdfs == mono.pdfs
    data = json.loads(path.read_text())
    data["pdfs"][0][1] = [9, 9, 9, 9, 9]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="disagrees") as err:
        load_context_dependency(path)
    assert err.value.path == str(path)
    stats = TreeStats.from_frames(
        np.array([0, 3]), np.array([1, 2]), np.array([0, 0]), np.array([0, 0]), np.array([[1.0], [3.0]])
    )
    ls = mono.leaf_stats(stats)
    assert ls.count[0] == 2 and ls.means_vars()[0][0, 0] == 2.0


def test_roots_file(tmp_path):
    path = tmp_path / "roots.txt"
    path.write_text("shared split SIL SPN\nnot-shared not-split 3\nshared split AH\n")
    roots = read_roots(path, {"SIL": 1, "SPN": 2, "AH": 4})
    assert roots == [RootSpec((1, 2)), RootSpec((3,), False, False), RootSpec((4,))]
    out = tmp_path / "roots.int"
    write_roots(out, roots)
    assert read_roots(out) == roots
    for text, line, message in [
        ("shared split 1\nshared 2\n", 2, "expected"),
        ("sharing split 1\n", 1, "first field"),
        ("shared splits 1\n", 1, "second field"),
        ("shared split 1 X\n", 1, "unknown phone"),
        ("shared split 1\nshared split 2 1\n", 2, "already on line 1"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=message) as err:
            read_roots(path)
        assert err.value.path == str(path) and err.value.line == line


def test_suggested_sizes_scale_with_data():
    assert suggest_max_leaves(254_000) == 500  # AN4 training part, 42 minutes
    assert suggest_max_leaves(0) == 20
    assert suggest_max_leaves(5_400_000) == 2320
    sizes = [suggest_max_leaves(n) for n in (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e10)]
    assert sizes == sorted(sizes) and sizes[-1] == 20000
    options = suggest_tree_options(254_000, min_gain=10.0)
    assert options.max_leaves == 500 and options.min_count == 50 and options.min_gain == 10.0


@pytest.mark.parametrize("seed", [0, 1])
def test_random_question_sets_never_break_the_tree(seed):
    """Arbitrary (even odd) questions: the tree stays consistent with brute force."""
    rng = np.random.default_rng(seed)
    phones = list(range(1, 6))
    left, centre, right, pdf_class, feats = _random_frames(seed, 8000, phones=phones, dim=2, scale=1.0)
    feats += rng.normal(size=(6, 2))[left] * (pdf_class == 1)[:, None]
    stats = TreeStats.from_frames(left, centre, right, pdf_class, feats)
    qs = [tuple(sorted(rng.choice(6, size=rng.integers(1, 5), replace=False).tolist())) for _ in range(15)]
    questions = QuestionSet(tuple(dict.fromkeys(qs)), ((0,), (0, 1), (1,)))
    num_pdf_classes = {p: 3 for p in phones}
    tree = build_tree(
        stats, questions, num_pdf_classes, make_roots(phones, [[1, 2]]), TreeBuildOptions(min_gain=0, min_count=5)
    )
    windows, classes = _all_windows(phones, num_pdf_classes)
    many = tree.compute_many(windows, classes)
    for p, j in itertools.product(phones, range(3)):
        rows = (windows[:, 1] == p) & (classes == j)
        assert tree.pdfs_for(p, j) == sorted(set(many[rows].tolist()))


def test_pdfs_for_prunes_branches_no_window_reaches(tmp_path):
    """A hand-made tree whose second question cannot answer "no" after the first answered "yes"."""
    nodes = [
        TableNode(KEY_CENTRE, {1: 1, 2: 6, 3: 6}),
        SplitNode(KEY_LEFT, frozenset({1, 2}), 2, 5),
        SplitNode(KEY_LEFT, frozenset({1, 2, 3}), 3, 4),
        LeafNode(0),
        LeafNode(1),  # left in {1, 2} and not in {1, 2, 3}: unreachable
        LeafNode(2),
        LeafNode(1),
    ]
    roots = [RootSpec((1,)), RootSpec((2, 3))]
    tree = ContextDependencyTree(nodes, {1: 1, 2: 1, 3: 1}, roots)
    assert tree.pdfs_for(1, 0) == [0, 2]
    windows, classes = _all_windows([1, 2, 3], {1: 1, 2: 1, 3: 1})
    reached = tree.compute_many(windows[windows[:, 1] == 1], classes[windows[:, 1] == 1])
    assert sorted(set(reached.tolist())) == [0, 2]
    path = tmp_path / "hand.json"
    tree.save(path)
    assert ContextDependencyTree.load(path).nodes == nodes
    with pytest.raises(ValueError, match="not reachable"):
        ContextDependencyTree([*nodes, LeafNode(3)], {1: 1, 2: 1, 3: 1}, roots)
