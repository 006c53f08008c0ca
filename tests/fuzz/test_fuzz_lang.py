"""Fuzzed ARPA language models and lexicons: our readers accept them with sane values or raise our InputError
naming the file and line; an ARPA file our reader accepts is also turned into G (kaldilm, run in an isolated
worker: an abort there must not kill the tests) without a crash."""

from __future__ import annotations

import math

import pytest
from fuzz_helpers import COUNTS, IsolatedWorker, assert_ours, fuzz_settings, outcome_of
from fuzz_targets import arpa_to_g
from hypothesis import given
from hypothesis import strategies as st

from asr.lang.lexicon import read_lexicon
from asr.lang.ngram import NgramLM, train_ngram_lm

NASTY = [
    "nan", "inf", "-inf", "+inf", "1e400", "-1e400", "-99", "0", "1", "-0", "0.5", "", "\\", "\\data\\", "\\end\\",
    "\\1-grams:", "\\2-grams:", "\\3-grams:", "\\9-grams:", "ngram 1=3", "ngram 2=-1", "ngram 1=999999", "=", "<s>",
    "</s>", "<unk>", "#0", "<eps>", "YES", "NO", "\x00", "\xa0", "\u2028", "\x85", "é", "(2)", "SIL", "AH0", "ZZ",
]  # fmt: skip
token = st.one_of(st.sampled_from(NASTY), st.text(max_size=6), st.from_regex(r"-?[0-9]{1,2}\.[0-9]{1,4}"))
line_text = st.lists(token, min_size=0, max_size=5).map(" ".join)
mutation = st.one_of(
    st.tuples(st.just("replace_line"), st.integers(0, 40), line_text),
    st.tuples(st.just("replace_field"), st.integers(0, 40), st.integers(0, 4), token),
    st.tuples(st.just("delete_line"), st.integers(0, 40)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 40)),
    st.tuples(st.just("swap_lines"), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("truncate"), st.integers(0, 2000)),
    st.tuples(st.just("insert_bytes"), st.integers(0, 2000), st.binary(min_size=1, max_size=4)),
)


def _mutate(data: bytes, m: tuple) -> bytes:
    lines = data.split(b"\n")
    kind, n = m[0], len(lines)
    if kind == "replace_line":
        lines[m[1] % n] = m[2].encode("utf-8", "surrogatepass")
    elif kind == "replace_field":
        i = m[1] % n
        fields = lines[i].split()
        if fields:
            fields[m[2] % len(fields)] = m[3].encode("utf-8", "surrogatepass")
        lines[i] = b" ".join(fields)
    elif kind == "delete_line":
        del lines[m[1] % n]
    elif kind == "duplicate_line":
        lines.insert(m[1] % n, lines[m[1] % n])
    elif kind == "swap_lines":
        i, j = m[1] % n, m[2] % n
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "truncate":
        return data[: m[1] % (len(data) + 1)]
    elif kind == "insert_bytes":
        pos = m[1] % (len(data) + 1)
        return data[:pos] + m[2] + data[pos:]
    return b"\n".join(lines)


@pytest.fixture(scope="module")
def g_worker():
    w = IsolatedWorker(arpa_to_g, timeout=60)
    yield w
    w.close()


def test_fuzz_arpa(tmp_path, g_worker):
    sentences = [s.split() for s in ("YES NO YES", "NO NO", "YES YES YES NO", "NO YES")]
    base = tmp_path / "base.arpa"
    train_ngram_lm(sentences, ["YES", "NO"], order=3).write_arpa(base)
    original = base.read_bytes()
    words = tmp_path / "words.txt"
    words.write_text("".join(f"{w} {i}\n" for i, w in enumerate(["<eps>", "NO", "YES", "#0", "<s>", "</s>"])))
    path = tmp_path / "lm.arpa"
    converted = 0

    @fuzz_settings(200)
    @given(mutations=st.lists(mutation, min_size=1, max_size=3))
    def check(mutations):
        nonlocal converted
        COUNTS["arpa"] += 1
        data = original
        for m in mutations:
            data = _mutate(data, m)
        path.write_bytes(data)
        outcome = outcome_of(NgramLM.read_arpa, path)
        assert_ours(outcome, [path], "read_arpa")
        if outcome[0] == "ours":
            lines = data.count(b"\n") + 1
            assert outcome[4] is None or 1 <= outcome[4] <= lines, outcome
            return
        lm = outcome[1]
        for table in lm.log10_probs:  # a log10 probability: finite (kaldilm aborts on -inf), <= 0
            assert all(math.isfinite(lp) and lp <= 0.0 for lp in table.values()), table
        for table in lm.log10_backoffs:  # a back-off weight: finite
            assert all(math.isfinite(b) for b in table.values()), table
        g = g_worker.call(str(path), str(words))
        assert_ours(g, [path, words], "arpa_to_g")
        converted += g[0] == "ok"

    check()
    print(f"[fuzz] ARPA: {COUNTS['arpa']} inputs ({converted} accepted and compiled to G)")


def test_fuzz_lexicon(tmp_path):
    base = b"YES Y EH S\nNO N OW\nNO(2) N AH0 W\nA AH0\nSIL SIL\n<UNK> SPN\nTHE DH AH0\nTHE(2) DH IY1\n"
    basep = b"YES 1.0 Y EH S\nNO 0.7 N OW\nNO 0.3 N AH W\n<UNK> 1.0 SPN\n"
    path = tmp_path / "lexicon.txt"

    @fuzz_settings(200)
    @given(mutations=st.lists(mutation, min_size=1, max_size=3), with_probs=st.booleans())
    def check(mutations, with_probs):
        COUNTS["lexicon"] += 1
        data = basep if with_probs else base
        for m in mutations:
            data = _mutate(data, m)
        path.write_bytes(data)
        outcome = outcome_of(lambda p: read_lexicon(p, with_probs=with_probs), path)
        assert_ours(outcome, [path], "read_lexicon")
        if outcome[0] == "ok":
            for entry in outcome[1]:
                assert entry.word and entry.phones and 0.0 < entry.prob <= 1.0, entry
                assert not any(c.isspace() for c in entry.word), entry
        elif outcome[4] is not None:
            assert 1 <= outcome[4] <= data.count(b"\n") + 1, outcome

    check()
    print(f"[fuzz] lexicon: {COUNTS['lexicon']} inputs")


@pytest.mark.parametrize(
    "line, fields",
    [
        (23, "-99 nan nan nan -99"),  # found by the long hypothesis run: kaldilm aborted the process on it
        (24, "-0.3756107\t<s> NO YES\t-0.5"),  # a back-off weight on a highest-order line
    ],
)
def test_backoff_on_highest_order_is_refused(tmp_path, g_worker, line, fields):
    """Regression case: a highest-order n-gram line with a back-off weight was accepted by read_arpa and made
    kaldilm abort in arpa_to_g; it is our InputError naming the file and line."""
    sentences = [s.split() for s in ("YES NO YES", "NO NO", "YES YES YES NO", "NO YES")]
    path = tmp_path / "lm.arpa"
    train_ngram_lm(sentences, ["YES", "NO"], order=3).write_arpa(path)
    lines = path.read_text().split("\n")
    assert lines[line - 1].count("\t") == 1 and len(lines[line - 1].split()) == 4  # a 3-gram line
    lines[line - 1] = fields
    path.write_text("\n".join(lines))
    outcome = outcome_of(NgramLM.read_arpa, path)
    assert outcome[0] == "ours" and outcome[3] == str(path) and outcome[4] == line, outcome
    words = tmp_path / "words.txt"
    words.write_text("".join(f"{w} {i}\n" for i, w in enumerate(["<eps>", "NO", "YES", "#0", "<s>", "</s>"])))
    g = g_worker.call(str(path), str(words))
    assert g[0] == "ours" and g[3] == str(path), g
