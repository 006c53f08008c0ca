"""Fuzzed data directories (wav.scp, text, utt2spk, segments, utt2dur): the reader and the validator either accept
the directory with sane values or raise our InputError naming a file of it (and the line, for a line's
problem); never another exception, never NaN/inf/negative times accepted."""

from __future__ import annotations

import math
from pathlib import Path

from fuzz_helpers import COUNTS, assert_ours, fuzz_settings, outcome_of
from hypothesis import given
from hypothesis import strategies as st

from asr.data.datadir import read_data_dir
from asr.data.validate import validate_data_dir

FILES = ("wav.scp", "text", "utt2spk", "segments", "utt2dur")
NASTY_TOKENS = [
    "nan", "NaN", "inf", "-inf", "1e400", "-1", "-0.5", "0", "1_000", "0x10", "", " ", "\t", "\r", "\x00", "\x0b",
    "\x1c", "\x85", "\xa0", "\u2028", "\ufeff", "é", "|", "cmd |", "#0", "<eps>", "a" * 300, "1.5", "2.0", "-1.0",
]  # fmt: skip


def _base_files(wav: Path) -> dict[str, bytes]:
    utts = [f"spk1-u{i}" for i in range(4)]
    return {
        "wav.scp": "".join(f"rec{i} {wav}\n" for i in range(2)).encode(),
        "text": "".join(f"{u} YES NO\n" for u in utts).encode(),
        "utt2spk": "".join(f"{u} spk1\n" for u in utts).encode(),
        "segments": "".join(f"{u} rec{i % 2} {0.1 * i:.1f} {0.1 * i + 0.5:.1f}\n" for i, u in enumerate(utts)).encode(),
        "utt2dur": "".join(f"{u} 0.5\n" for u in utts).encode(),
    }


NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "-1", "-0.5", "0", "-0", "1e-320",
           "0.3", "5", "1e9", "1_0", "0x1"]  # fmt: skip
token = st.one_of(st.sampled_from(NASTY_TOKENS), st.text(max_size=8), st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,3})?"))
line_text = st.lists(token, min_size=0, max_size=5).map(" ".join)
mutation = st.one_of(
    # a time or duration field (segments: fields 2 and 3, utt2dur: field 1) replaced by a nasty number
    st.tuples(st.just("replace_field"), st.integers(0, 6), st.sampled_from([1, 2, 3]), st.sampled_from(NUMBERS)),
    st.tuples(st.just("replace_line"), st.integers(0, 6), line_text),
    st.tuples(st.just("replace_field"), st.integers(0, 6), st.integers(0, 3), token),
    st.tuples(st.just("delete_line"), st.integers(0, 6)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 6)),
    st.tuples(st.just("insert_bytes"), st.integers(0, 200), st.binary(min_size=1, max_size=6)),
    st.tuples(st.just("truncate"), st.integers(0, 200)),
    st.tuples(st.just("crlf")),
)


def _mutate(data: bytes, m: tuple) -> bytes:
    lines = data.split(b"\n")
    kind = m[0]
    if kind == "replace_line" and lines:
        lines[m[1] % len(lines)] = m[2].encode("utf-8", "surrogatepass")
    elif kind == "replace_field" and lines:
        i = m[1] % len(lines)
        fields = lines[i].split(b" ")
        fields[m[2] % len(fields)] = m[3].encode("utf-8", "surrogatepass")
        lines[i] = b" ".join(fields)
    elif kind == "delete_line" and lines:
        del lines[m[1] % len(lines)]
    elif kind == "duplicate_line" and lines:
        i = m[1] % len(lines)
        lines.insert(i, lines[i])
    elif kind == "insert_bytes":
        pos = m[1] % (len(data) + 1)
        return data[:pos] + m[2] + data[pos:]
    elif kind == "truncate":
        return data[: m[1] % (len(data) + 1)]
    elif kind == "crlf":
        return data.replace(b"\n", b"\r\n")
    return b"\n".join(lines)


def _check_values(data) -> None:
    """What a successful read must hold (else: a silently wrong result)."""
    if data.segments is not None:
        for utt, seg in data.segments.items():
            assert math.isfinite(seg.start) and math.isfinite(seg.end), (utt, seg)
            assert seg.start >= 0 and (seg.end < 0 or seg.end > seg.start), (utt, seg)
    if data.utt2dur is not None:
        for utt, dur in data.utt2dur.items():
            assert math.isfinite(dur) and dur > 0, (utt, dur)
    for table in (data.wav_scp, data.text, data.utt2spk):
        for key, value in table.items():
            assert key and not any(c in key for c in " \t\n\r"), repr(key)
            assert "\n" not in value, repr(value)


def test_fuzz_data_dir(tmp_path_factory, yesno_root):
    wav = sorted((yesno_root / "waves_yesno").glob("*.wav"))[0]
    base = _base_files(wav)
    root = tmp_path_factory.mktemp("fuzz_datadir")

    @fuzz_settings(300)
    @given(
        files=st.lists(st.sampled_from(FILES + ("segments", "utt2dur") * 2), min_size=1, max_size=2, unique=True),
        mutations=st.lists(mutation, min_size=1, max_size=3),
        with_segments=st.booleans(),
    )
    def check(files, mutations, with_segments):
        COUNTS["data dir"] += 1
        d = root / f"d{COUNTS['data dir']}"
        d.mkdir()
        for name, content in base.items():
            if name == "segments" and not with_segments:
                continue
            if name in files:
                for m in mutations:
                    content = _mutate(content, m)
            (d / name).write_bytes(content)
        read = outcome_of(read_data_dir, d)
        assert_ours(read, [d], "read_data_dir")
        if read[0] == "ok":
            _check_values(read[1])
        validated = outcome_of(lambda p: validate_data_dir(p, check_audio=False), d)
        assert_ours(validated, [d], "validate_data_dir")
        if validated[0] == "ok":  # what the validator accepts, the reader reads
            assert read[0] == "ok", read
        for outcome in (read, validated):
            if outcome[0] == "ours" and outcome[4] is not None:  # a line number must exist in the named file
                named = Path(outcome[3])
                assert 1 <= outcome[4] <= named.read_bytes().count(b"\n") + 1, outcome

    check()
    print(f"[fuzz] data dir: {COUNTS['data dir']} inputs")
