"""Our n-gram estimator: normalization, agreement with the textbook formulas, AN4 perplexity, ARPA I/O."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from asr.errors import InputError
from asr.lang.lang_dir import Lang
from asr.lang.ngram import (
    BOS,
    EOS,
    NgramLM,
    count_ngrams,
    modified_kn_discounts,
    read_training_sentences,
    train_ngram_lm,
)
from asr.lang.prepare_lm import lm_vocabulary
from asr.lang.prepare_lm import main as prepare_lm_main

ORDERS_AND_METHODS = [(order, method) for method in ("kn", "wb") for order in (1, 2, 3)]


@pytest.fixture(scope="module")
def train_sentences(an4_split):
    return [words for _, words in an4_split["train"]]


@pytest.fixture(scope="module")
def dev_sentences(an4_split):
    return [words for _, words in an4_split["dev"]]


@pytest.fixture(scope="module")
def models(train_sentences, an4_lexicon, tmp_path_factory):
    """Each (order, method): the model read back from the ARPA file it was written to, and that file."""
    out = tmp_path_factory.mktemp("lm")
    result = {}
    for order, method in ORDERS_AND_METHODS:
        path = out / f"{method}{order}.arpa"
        train_ngram_lm(train_sentences, an4_lexicon.words, order=order, method=method).write_arpa(path)
        result[order, method] = (NgramLM.read_arpa(path), path)
    return result


@pytest.mark.parametrize(("order", "method"), ORDERS_AND_METHODS)
def test_probabilities_sum_to_one_for_every_history(models, an4_lexicon, order, method):
    lm, _ = models[order, method]
    support = [*an4_lexicon.words, EOS]
    assert sorted(lm.vocab) == sorted(support)
    histories = lm.histories()
    assert len(histories) == 1 + sum(len(t) for t in lm.log10_backoffs)
    if order > 1:
        assert (BOS,) in histories and len(histories) > 90
    for history in histories:
        total = sum(10.0 ** lm.log10_prob(w, history) for w in support)
        assert total == pytest.approx(1.0, abs=1e-5), history
    assert lm.missing_lower_order_ngrams() == []
    assert lm.counts()[0] == len(support) + 1  # every vocabulary word, </s> and <s>


def _kn_reference(sentences, vocab, order):
    """Interpolated modified Kneser-Ney straight from Chen & Goodman's recursion (slow, for checking)."""
    raw = count_ngrams(sentences, order)
    support = [*vocab, EOS]

    def adjusted(g):
        k = len(g)
        if k == order or g[0] == BOS:
            return raw[k - 1].get(g, 0)
        return sum(1 for h in raw[k] if h[1:] == g)

    adj = [{g: adjusted(g) for g in raw[k]} for k in range(order)]
    discounts = []
    for k in range(order):
        n = Counter(adj[k].values())
        y = n[1] / (n[1] + 2 * n[2])
        discounts.append((0.0, 1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3]))

    def prob(w, h):
        lower = prob(w, h[1:]) if h else 1.0 / len(support)
        k = len(h) + 1
        ext = {u: adj[k - 1].get((*h, u), 0) for u in support}
        total = sum(ext.values())
        if total == 0:
            return lower
        d = discounts[k - 1]
        gamma = sum(d[min(c, 3)] for c in ext.values() if c) / total
        return (ext[w] - d[min(ext[w], 3)]) / total + gamma * lower

    return prob


def _wb_reference(sentences, vocab, order):
    """Interpolated Witten-Bell from its definition (slow, for checking)."""
    raw = count_ngrams(sentences, order)
    support = [*vocab, EOS]

    def prob(w, h):
        lower = prob(w, h[1:]) if h else 1.0 / len(support)
        ext = {u: raw[len(h)].get((*h, u), 0) for u in support}
        total, types = sum(ext.values()), sum(1 for c in ext.values() if c)
        return lower if total == 0 else (ext[w] + types * lower) / (total + types)

    return prob


@pytest.mark.parametrize(("order", "method"), [(3, "kn"), (2, "kn"), (3, "wb"), (1, "wb")])
def test_agrees_with_the_textbook_formulas(models, train_sentences, dev_sentences, an4_lexicon, order, method):
    lm, _ = models[order, method]
    reference = (_kn_reference if method == "kn" else _wb_reference)(train_sentences, an4_lexicon.words, order)
    checked = 0
    for sentence in dev_sentences[:25]:
        tokens = (BOS, *sentence, EOS)
        for i in range(1, len(tokens)):
            history = tokens[max(0, i - order + 1) : i]
            for w in (tokens[i], "ZERO", "APOSTROPHE", EOS):
                assert lm.log10_prob(w, history) == pytest.approx(math.log10(reference(w, history)), abs=2e-6)
                checked += 1
    assert checked > 300


def test_unseen_vocabulary_words_get_probability(train_sentences, an4_lexicon):
    vocab = [*an4_lexicon.words, "ZZUNSEEN"]
    for method in ("kn", "wb"):
        lm = train_ngram_lm(train_sentences, vocab, order=3, method=method)
        assert -8.0 < lm.log10_prob("ZZUNSEEN", (BOS, "YES")) < -2.0
        assert lm.log10_prob("NOTINVOCAB", (BOS,)) == -math.inf


def test_witten_bell_and_kneser_ney_by_hand():
    # vocabulary {A, B} + </s>; one sentence "A": unigram counts A 1, </s> 1
    wb = train_ngram_lm([("A",)], ["A", "B"], order=1, method="wb")
    # (c + T/|V|) / (N + T) with N = 2 tokens, T = 2 types, |V| = 3
    assert 10 ** wb.log10_prob("A") == pytest.approx((1 + 2 / 3) / 4, rel=1e-6)
    assert 10 ** wb.log10_prob("B") == pytest.approx((2 / 3) / 4, rel=1e-6)
    kn = train_ngram_lm([("A",)], ["A", "B"], order=1, method="kn")
    # n2 = 0: single discount fallback D = 0.5; (1 - D)/2 + gamma/3 with gamma = 2 D / 2
    assert 10 ** kn.log10_prob("A") == pytest.approx(0.25 + 0.5 / 3, rel=1e-6)
    assert 10 ** kn.log10_prob("B") == pytest.approx(0.5 / 3, rel=1e-6)


def test_modified_kn_discounts():
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [9] * 7
    y = 10 / (10 + 2 * 5)
    assert modified_kn_discounts(counts) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))


def test_perplexity_on_an4_dev(models, dev_sentences):
    ppl = {key: lm.perplexity(dev_sentences) for key, (lm, _) in models.items()}
    for (order, method), p in ppl.items():
        assert p.sentences == 125 and p.oovs == 0 and p.words == sum(len(s) for s in dev_sentences)
        assert math.isfinite(p.perplexity) and 1.0 < p.perplexity < 200.0, (order, method)
        assert p.perplexity == pytest.approx(10 ** (-p.log10_prob / (p.words + p.sentences)))
    for method in ("kn", "wb"):
        assert ppl[3, method].perplexity < ppl[2, method].perplexity < ppl[1, method].perplexity


def test_perplexity_skips_oovs_or_maps_them(models):
    lm, _ = models[3, "kn"]
    p = lm.perplexity([("YES", "FLUBBER", "NO")])
    assert (p.words, p.oovs) == (3, 1)
    assert p.log10_prob == pytest.approx(
        lm.log10_prob("YES", (BOS,)) + lm.log10_prob("NO", ("YES", "FLUBBER")) + lm.log10_prob(EOS, ("FLUBBER", "NO"))
    )
    assert lm.log10_prob("NO", ("YES", "FLUBBER")) == pytest.approx(lm.log10_prob("NO", ()))


@pytest.mark.parametrize(("order", "method"), ORDERS_AND_METHODS)
def test_arpa_round_trip(models, tmp_path, order, method):
    lm, path = models[order, method]
    again = tmp_path / "again.arpa"
    lm.write_arpa(again)
    assert again.read_text() == path.read_text()
    assert NgramLM.read_arpa(again) == lm
    text = path.read_text()
    assert text.startswith("\\data\\\n") and text.rstrip().endswith("\\end\\")
    for k, n in enumerate(lm.counts(), start=1):
        assert f"ngram {k}={n}\n" in text
        assert f"\\{k}-grams:" in text


GOOD_ARPA = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-99\t<s>\t-0.3
-0.5\tA\t-0.2
-0.6\tB
-0.7\t</s>

\\2-grams:
-0.1\t<s> A
-0.2\tA </s>

\\end\\
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("-0.6\tB\n", "-0.6\tB\t-0.1\t7\n", 8, "needs 2 or 3 fields"),
        ("-0.6\tB\n", "minus\tB\n", 8, "not a number"),
        ("-0.6\tB\n", "0.6\tB\n", 8, "bad log10 probability"),
        ("-0.2\tA </s>\n", "-0.2\t<s> A\n", 13, "repeated"),
        ("ngram 2=2\n", "ngram 2=3\n", 11, "declares 3 2-grams"),
        ("ngram 2=2\n", "ngram two=2\n", 3, "bad count line"),
        ("\\2-grams:\n", "\\3-grams:\n", 11, "out of order"),
        ("\\end\\\n", "", 14, "no \\\\end\\\\"),
    ],
)
def test_malformed_arpa_names_file_and_line(tmp_path, old, new, line, message):
    path = tmp_path / "bad.arpa"
    assert old in GOOD_ARPA
    path.write_text(GOOD_ARPA.replace(old, new))
    with pytest.raises(InputError, match=message) as err:
        NgramLM.read_arpa(path)
    assert (err.value.path, err.value.line) == (str(path), line)


def test_good_arpa_reads(tmp_path):
    path = tmp_path / "good.arpa"
    path.write_text("header text from some tool\n" + GOOD_ARPA)
    lm = NgramLM.read_arpa(path)
    assert lm.counts() == [4, 2] and lm.log10_backoffs[0] == {("<s>",): -0.3, ("A",): -0.2}
    assert lm.log10_prob("B", ("A",)) == pytest.approx(-0.2 - 0.6)


def test_training_text_oov_is_an_error_naming_file_and_line(tmp_path):
    text = tmp_path / "text"
    text.write_text("u1 YES NO\nu2 NO MAYBE\n")
    with pytest.raises(InputError, match="'MAYBE'") as err:
        read_training_sentences([text], ["YES", "NO"])
    assert (err.value.path, err.value.line) == (str(text), 2)
    assert read_training_sentences([text], ["YES", "NO", "<UNK>"], oov_word="<UNK>") == [
        ("YES", "NO"),
        ("NO", "<UNK>"),
    ]


def test_prepare_lm_cli(an4_lang, an4_texts, tmp_path, caplog):
    out = tmp_path / "lm.arpa"
    args = ["--text", str(an4_texts["train"]), "--lang", str(an4_lang), "--order", "3", "--method", "kn"]
    prepare_lm_main([*args, "--eval-text", str(an4_texts["dev"]), "--out", str(out)])
    lm = NgramLM.read_arpa(out)
    assert lm.order == 3 and sorted(lm.vocab) == sorted([*lm_vocabulary(Lang.load(an4_lang).words), EOS])
    bad = tmp_path / "bad.text"
    bad.write_text("u1 YES\nu2 YES PLEASE\n")
    with pytest.raises(SystemExit, match=f"{bad}:2: word 'PLEASE'"):
        prepare_lm_main(["--text", str(bad), "--lang", str(an4_lang), "--out", str(tmp_path / "x.arpa")])
