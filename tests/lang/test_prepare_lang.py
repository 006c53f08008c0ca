"""The lang directory: team id layout, phone lists, Lang.load checks, the prepare_lang command line."""

from __future__ import annotations

import shutil

import pytest

from asr.errors import InputError
from asr.lang.lang_dir import Lang
from asr.lang.phones import CMU_PHONES
from asr.lang.prepare_lang import main as prepare_lang_main
from asr.lang.prepare_lang import prepare_lang
from asr.lang.symbol_table import SymbolTable


def test_an4_lang_layout(an4_lang, an4_lexicon):
    phones = SymbolTable.read(an4_lang / "phones.txt").symbols
    n_nonsil = len(an4_lexicon.phones() - {"SIL", "SPN"})
    assert phones[:3] == ["<eps>", "SIL", "SPN"]
    assert phones[3 : 3 + n_nonsil] == sorted(an4_lexicon.phones() - {"SIL", "SPN"})
    assert set(phones[3 : 3 + n_nonsil]) <= set(CMU_PHONES)
    assert phones[3 + n_nonsil :] == [f"#{k}" for k in range(len(phones) - 3 - n_nonsil)]
    words = SymbolTable.read(an4_lang / "words.txt").symbols
    assert words[0] == "<eps>" and words[-3:] == ["#0", "<s>", "</s>"]
    assert words[1:-3] == an4_lexicon.words == sorted(words[1:-3])

    lang = Lang.load(an4_lang)
    assert lang.silence_phones == [1, 2]
    assert lang.nonsilence_phones == list(range(3, 3 + n_nonsil))
    assert lang.disambig_phone_ids == list(range(3 + n_nonsil, len(phones)))
    assert lang.phones.symbol(lang.phone_backoff_id) == "#0" and lang.word_disambig_id == len(words) - 3
    assert lang.num_phones == 2 + n_nonsil
    assert lang.lexicon == an4_lexicon
    assert lang.oov_word is None and lang.oov_id is None and lang.G is None
    assert lang.L.num_states > 0 and lang.L_disambig.num_states > lang.L.num_states
    for name in ("silence", "nonsilence", "disambig"):
        names = (an4_lang / "phones" / f"{name}.txt").read_text().split()
        ids = [int(x) for x in (an4_lang / "phones" / f"{name}.int").read_text().split()]
        assert lang.phones.ids(names) == ids
    assert (an4_lang / "phones" / "optional_silence.txt").read_text() == "SIL\n"
    assert (an4_lang / "lexicon.txt").read_text().splitlines()[:2] == ["A AH", "A EY"]
    assert not (an4_lang / "oov.txt").exists()


def test_oov_word_in_lang(an4_lexicon, tmp_path):
    lang = Lang.load(prepare_lang(an4_lexicon, tmp_path / "lang", oov_word="<UNK>"))
    assert lang.oov_word == "<UNK>" and lang.oov_id == lang.words.id("<UNK>") == 1
    assert lang.lexicon.pronunciations("<UNK>") == [("SPN",)]
    assert (tmp_path / "lang" / "oov.int").read_text() == "1\n"
    # rewriting without an OOV word removes oov.txt
    prepare_lang(an4_lexicon, tmp_path / "lang")
    assert Lang.load(tmp_path / "lang").oov_word is None


def _copy(lang_dir, tmp_path):
    dst = tmp_path / "lang"
    shutil.copytree(lang_dir, dst)
    return dst


def test_load_refuses_a_malformed_phones_table(an4_lang, tmp_path):
    lang_dir = _copy(an4_lang, tmp_path)
    lines = (lang_dir / "phones.txt").read_text().splitlines()
    lines[4] = "AE four"
    (lang_dir / "phones.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="not an integer") as err:
        Lang.load(lang_dir)
    assert (err.value.path, err.value.line) == (str(lang_dir / "phones.txt"), 5)


def test_load_refuses_a_lexicon_word_missing_from_words(an4_lang, tmp_path):
    lang_dir = _copy(an4_lang, tmp_path)
    with open(lang_dir / "lexiconp.txt", "a") as f:
        f.write("ZEBRA 1 Z IY B R AH\n")
    with pytest.raises(InputError, match="'ZEBRA' is not in words.txt") as err:
        Lang.load(lang_dir)
    assert err.value.line == 131


def test_load_refuses_swapped_silence_phones(an4_lang, tmp_path):
    lang_dir = _copy(an4_lang, tmp_path)
    (lang_dir / "phones" / "silence.int").write_text("1\n3\n")
    with pytest.raises(InputError, match="silence phones"):
        Lang.load(lang_dir)
    (lang_dir / "phones" / "silence.int").write_text("1\n2\n")
    (lang_dir / "phones" / "disambig.int").write_text("1\nx\n")
    with pytest.raises(InputError, match="one integer") as err:
        Lang.load(lang_dir)
    assert err.value.line == 2


def test_cli_with_corpus_dictionary(an4_dic, an4_texts, tmp_path):
    out = tmp_path / "lang"
    prepare_lang_main(["--dict", str(an4_dic), "--words-from", str(an4_texts["train"]), "--out", str(out)])
    lang = Lang.load(out)
    assert len(lang.lexicon) == 101  # the corpus dictionary is kept whole


def test_cli_oov_error_and_unk(an4_dic, tmp_path):
    text = tmp_path / "text"
    text.write_text("spk-1 YES NO\nspk-2 YES MAYBE\n")
    with pytest.raises(SystemExit, match=f"{text}:2: word 'MAYBE' is not in the lexicon"):
        prepare_lang_main(["--dict", str(an4_dic), "--words-from", str(text), "--out", str(tmp_path / "lang")])
    assert not (tmp_path / "lang").exists()
    prepare_lang_main(
        ["--dict", str(an4_dic), "--words-from", str(text), "--oov-word", "<UNK>", "--out", str(tmp_path / "lang")]
    )
    assert Lang.load(tmp_path / "lang").oov_word == "<UNK>"


def test_cli_with_cmudict_restricted_to_text_words(tmp_path):
    text = tmp_path / "text"
    text.write_text("spk-1 YES NO\nspk-2 TOMATO NO XYZZYQ\n")
    out = tmp_path / "lang"
    prepare_lang_main(["--dict", "cmudict", "--words-from", str(text), "--oov-word", "<UNK>", "--out", str(out)])
    lang = Lang.load(out)
    assert lang.lexicon.words == ["<UNK>", "NO", "TOMATO", "YES"]
    assert lang.words.symbols == ["<eps>", "<UNK>", "NO", "TOMATO", "YES", "#0", "<s>", "</s>"]
