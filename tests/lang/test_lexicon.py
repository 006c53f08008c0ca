"""Lexicons: AN4's dictionary, CMUdict, Kaldi lexicon(p).txt, bad lines, OOV listing and <UNK> mapping."""

from __future__ import annotations

import pytest

from asr.errors import InputError
from asr.lang.lexicon import Lexicon, add_oov_word, check_oovs, find_oovs, load_cmudict, read_lexicon
from asr.lang.phones import CMU_PHONES, SIL, strip_stress


def test_an4_dictionary(an4_lexicon, an4_dic, an4_root):
    assert len(CMU_PHONES) == 39 and len(set(CMU_PHONES)) == 39
    lines = [line for line in an4_dic.read_text().splitlines() if line.strip()]
    assert an4_lexicon.num_pronunciations == len(lines) == 130
    assert len(an4_lexicon) == len({line.split()[0].split("(")[0] for line in lines}) == 101
    assert an4_lexicon.pronunciations("A") == [("AH",), ("EY",)]
    assert an4_lexicon.pronunciations("FEBRUARY") == [  # file order: FEBRUARY, FEBRUARY(2), ..., FEBRUARY(5)
        tuple(p.split())
        for p in ("F EH B AH W EH R IY", "F EH B R UW W EH R IY", "F EH B UW W EH R IY", "F EH B Y AH W EH R IY")
    ] + [tuple("F EH B Y UW W EH R IY".split())]
    assert "FEBRUARY(2)" not in an4_lexicon
    phones = an4_lexicon.phones()
    assert phones <= set(CMU_PHONES) | {SIL}
    an4_phone_file = set((an4_root / "etc" / "an4.phone").read_text().split())
    assert phones <= an4_phone_file
    assert an4_lexicon.words == sorted(an4_lexicon.words)


def test_stress_is_stripped_and_duplicates_merged(tmp_path):
    path = tmp_path / "dict"
    path.write_text("THE  DH AH0\nTHE(2)  DH AH1\nTHE(3) DH IY0\nTOMATO T AH0 M EY1 T OW2\n")
    lexicon = read_lexicon(path)
    assert lexicon.pronunciations("THE") == [("DH", "AH"), ("DH", "IY")]
    assert lexicon.pronunciations("TOMATO") == [tuple("T AH M EY T OW".split())]
    assert strip_stress("ER2") == "ER" and strip_stress("SIL") == "SIL"


def test_lexicon_txt_and_lexiconp_round_trip(an4_lexicon, tmp_path):
    lexicon = Lexicon(an4_lexicon)
    lexicon.add("A", ("AH", "EY"), 0.25)
    lexicon.write(tmp_path / "lexicon.txt")
    lexicon.write(tmp_path / "lexiconp.txt", with_probs=True)
    assert (tmp_path / "lexicon.txt").read_text().splitlines()[:3] == ["A AH", "A EY", "A AH EY"]
    assert read_lexicon(tmp_path / "lexicon.txt").num_pronunciations == lexicon.num_pronunciations
    again = read_lexicon(tmp_path / "lexiconp.txt", with_probs=True)
    assert again == lexicon
    assert [e.prob for e in again if e.word == "A"] == [1.0, 1.0, 0.25]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("A  AH\nB  B IY\nC  S QQ\n", 3, "unknown phone"),
        ("A  AH\nB\n", 2, "no phones"),
        ("<s>  SIL\n", 1, "reserved"),
        ("#1  AH\n", 1, "reserved for disambiguation"),
        ("A  AH\nB  b iy\n", 2, "unknown phone"),
    ],
)
def test_bad_lexicon_lines_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.dic"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_lexicon(path)
    assert (err.value.path, err.value.line) == (str(path), line)


def test_bad_lexiconp_lines(tmp_path):
    path = tmp_path / "lexiconp.txt"
    path.write_text("A 1.0 AH\nB x B IY\n")
    with pytest.raises(InputError, match="not a number") as err:
        read_lexicon(path, with_probs=True)
    assert err.value.line == 2
    path.write_text("A 1.0 AH\nB 1.5 B IY\n")
    with pytest.raises(InputError, match=r"not in \(0, 1\]") as err:
        read_lexicon(path, with_probs=True)
    assert err.value.line == 2
    path.write_bytes(b"A 1.0 AH\n\xff 1.0 B\n")
    with pytest.raises(InputError, match="UTF-8") as err:
        read_lexicon(path, with_probs=True)
    assert err.value.line == 2


def test_cmudict_offline():
    lexicon = load_cmudict(["yes", "NO", "TOMATO", "NOTAWORDATALL"])
    assert lexicon.words == ["NO", "TOMATO", "YES"]
    assert lexicon.pronunciations("YES") == [("Y", "EH", "S")]
    assert set(lexicon.pronunciations("TOMATO")) == {tuple("T AH M EY T OW".split()), tuple("T AH M AA T OW".split())}
    assert lexicon.phones() <= set(CMU_PHONES)


@pytest.fixture()
def texts_with_oovs(tmp_path):
    a = tmp_path / "a.text"
    a.write_text("u1 YES NO\nu2 NO FOO\nu3 BAR FOO FOO\n")
    b = tmp_path / "b.text"
    b.write_text("u4 BAZ YES\nu5\n")
    return [a, b]


def test_oov_listing(an4_lexicon, texts_with_oovs):
    a, b = texts_with_oovs
    report = find_oovs(an4_lexicon, texts_with_oovs)
    assert report.counts == {"FOO": 3, "BAR": 1, "BAZ": 1}
    assert report.first_seen == {"FOO": (str(a), 2), "BAR": (str(a), 3), "BAZ": (str(b), 1)}
    assert report.order == ["FOO", "BAR", "BAZ"]
    assert report.num_tokens == 9 and report.num_oov_tokens == 5
    summary = report.summary()
    assert "3 OOV word type(s), 5 of 9 tokens" in summary and f"FOO x3 (first at {a}:2)" in summary
    assert not find_oovs(an4_lexicon, [a.parent / "none.text"] * 0)


def test_oov_is_an_error_without_oov_word(an4_lexicon, texts_with_oovs):
    with pytest.raises(InputError, match="'FOO' is not in the lexicon") as err:
        check_oovs(an4_lexicon, texts_with_oovs)
    assert (err.value.path, err.value.line) == (str(texts_with_oovs[0]), 2)
    assert "BAZ x1" in str(err.value)


def test_oov_mapped_to_unk_when_configured(an4_lexicon, texts_with_oovs):
    report = check_oovs(an4_lexicon, texts_with_oovs, oov_word="<UNK>")
    assert report.num_oov_tokens == 5
    lexicon = add_oov_word(Lexicon(an4_lexicon), "<UNK>")
    assert lexicon.pronunciations("<UNK>") == [("SPN",)]
    assert "<UNK>" not in an4_lexicon
    assert lexicon.words[0] == "<UNK>"  # '<' sorts before letters in C order
