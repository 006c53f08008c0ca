"""Transcribing with bundles: agreement with decode_dir, CMVN policies, sample rates, stereo, word times,
confidence, the CLI's output format and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr.data.audio import read_audio, resample
from asr.errors import ConfigError, InputError
from asr.score import read_text, score_texts
from asr.transcribe import Recognizer, main, transcribe_data_dir

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "asr.transcribe", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_speaker_cmvn_reproduces_decode_dir_and_online_is_close(yesno_bundles, yesno_recipe):
    """With the trained condition (per-speaker CMVN over the data dir) the words are decode_dir's exactly; the
    bundle's default (online CMVN, one file at a time) stays close."""
    test = yesno_bundles.data / "test"
    refs = read_text(test / "text")
    gmm_decode = read_text(yesno_recipe.exp / "mono" / "decode_test" / "hyp.txt")
    recognizer = Recognizer(yesno_bundles.gmm, cmvn="speaker", word_times=False)
    hyps = {t.name: t.words for t in transcribe_data_dir(recognizer, test)}
    assert hyps == gmm_decode
    online = Recognizer(yesno_bundles.gmm, word_times=False)
    assert online.policy.kind == "online"
    wer = score_texts(refs, {t.name: t.words for t in transcribe_data_dir(online, test)}).wer
    assert wer <= score_texts(refs, gmm_decode).wer + 2.0, wer


def test_dnn_bundle_transcribes_like_its_decode(yesno_bundles, tmp_path):
    from asr.decode.decode_dir import decode_data_dir

    test = yesno_bundles.data / "test"
    results = decode_data_dir(
        yesno_bundles.exp / "mono" / "graph", yesno_bundles.dnn_dir, test, tmp_path / "decode", jobs=1
    )
    decoded = read_text(tmp_path / "decode" / "hyp.txt")
    recognizer = Recognizer(yesno_bundles.dnn, cmvn="speaker", word_times=False)
    assert {t.name: t.words for t in transcribe_data_dir(recognizer, test)} == decoded
    refs = read_text(test / "text")
    online = Recognizer(yesno_bundles.dnn, word_times=False)
    wer = score_texts(refs, {t.name: t.words for t in transcribe_data_dir(online, test)}).wer
    assert wer <= results["wer"] + 5.0, (wer, results["wer"])


def test_any_sample_rate_and_the_first_channel_of_stereo(yesno_bundles, tmp_path, caplog):
    recognizer = Recognizer(yesno_bundles.gmm)
    for utt, wav in yesno_bundles.test_wavs(2):
        samples, rate = read_audio(wav)
        assert rate == 8000
        original = recognizer.transcribe_file(wav)
        up = tmp_path / f"{utt}_16k.flac"
        soundfile.write(up, resample(samples, 8000, 16000), 16000, subtype="PCM_16")
        with caplog.at_level("INFO"):
            resampled = recognizer.transcribe_file(up)
        assert f"{up}: resampling 16000 Hz -> 8000 Hz" in caplog.text
        assert resampled.words == original.words and resampled.words
        assert abs(resampled.audio_seconds - original.audio_seconds) < 1e-3
        starts = [s.start_frame for s in original.segments]
        assert np.max(np.abs(np.subtract([s.start_frame for s in resampled.segments], starts))) <= 2
        stereo = tmp_path / f"{utt}_stereo.wav"
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, samples.size).astype(np.float32)
        soundfile.write(stereo, np.stack([samples, noise], axis=1), 8000, subtype="PCM_16")
        assert recognizer.transcribe_file(stereo).words == original.words


def test_word_times_follow_the_lexicon_and_confidences_are_posteriors(yesno_bundles):
    for bundle in (yesno_bundles.gmm, yesno_bundles.dnn):
        recognizer = Recognizer(bundle)
        phones = {"YES": "Y", "NO": "N"}  # the yes/no lexicon: one phone per word
        for _, wav in yesno_bundles.test_wavs(3):
            t = recognizer.transcribe_file(wav)
            assert len(t.segments) == len(t.words) == 8
            end = 0
            for seg in t.segments:
                assert seg.start_frame >= end and seg.num_frames > 0
                end = seg.start_frame + seg.num_frames
                assert 0.0 <= seg.confidence <= 1.0
            assert end <= t.num_frames
            # the frames of each word are exactly the phone of its pronunciation
            path_phones = _best_path_phones(recognizer, wav)
            for seg in t.segments:
                names = set(path_phones[seg.start_frame : seg.start_frame + seg.num_frames])
                assert names == {phones[seg.word]}, (seg, names)
            lines = t.ctm_lines(confidence=True)
            assert [ln.split()[4] for ln in lines] == t.words
            start = float(lines[0].split()[2])
            assert start == pytest.approx(t.segments[0].start_frame * 0.01 + 0.0075, abs=1e-3)


def _best_path_phones(recognizer: Recognizer, wav: str) -> list[str]:
    """Phone name per frame of the best path (decoded again here, independently of the aligner)."""
    import kaldi_decoder

    from asr.decode.decoder import emission_scores
    from asr.decode.transcript import best_path_of
    from asr.features.online import normalize
    from asr.lang.symbol_table import SymbolTable

    samples, rate = read_audio(wav, recognizer.feature_options.sample_rate)
    feats = normalize(recognizer.features(samples), recognizer.policy, recognizer.global_cmvn_stats)
    scores = recognizer.model.log_likelihoods(feats) * recognizer.acoustic_scale
    decoder = kaldi_decoder.FasterDecoder(recognizer.hclg, recognizer.decoder_options.to_kaldi())
    decoder.decode(kaldi_decoder.DecodableCtc(emission_scores(scores, recognizer.transition_model)))
    path = best_path_of(decoder)
    phones = SymbolTable.read(recognizer.bundle.model_dir / "phones.txt")
    return [phones.symbol(int(p)) for p in recognizer.transition_model.tstate_to_phone[path.tstate_ids]]


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI's main() in this process (as the command line does, without a new interpreter)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_output_formats(yesno_bundles, tmp_path, capsys):
    wavs = [w for _, w in yesno_bundles.test_wavs(2)]
    refs = read_text(yesno_bundles.data / "test" / "text")
    utts = [u for u, _ in yesno_bundles.test_wavs(2)]
    bundle = str(yesno_bundles.gmm)
    code, text, err = _main(capsys, bundle, *wavs)
    assert code == 0, err
    lines = text.splitlines()
    assert [ln.split()[0] for ln in lines] == wavs
    assert [ln.split()[1:] for ln in lines] == [refs[u] for u in utts]
    code, ctm, err = _main(capsys, bundle, *wavs, "--confidence")
    assert code == 0, err
    rows = [ln.split() for ln in ctm.splitlines()]
    assert len(rows) == 16 and all(len(r) == 6 and r[1] == "1" for r in rows)
    for wav, utt in zip(wavs, utts):
        mine = [r for r in rows if r[0] == wav]
        assert [r[4] for r in mine] == refs[utt]
        starts = [float(r[2]) for r in mine]
        assert starts == sorted(starts) and all(float(r[3]) > 0 and 0 <= float(r[5]) <= 1 for r in mine)
    code, plain_ctm, _ = _main(capsys, bundle, wavs[0], "--ctm")
    assert [len(ln.split()) for ln in plain_ctm.splitlines()] == [5] * 8
    listing = tmp_path / "files.txt"
    listing.write_text(f"# yes/no\n{wavs[0]}\n\n{wavs[1]}\n")
    code, listed, err = _main(capsys, bundle, "--list", str(listing), "--stream", "--chunk-ms", "50", "--partial")
    assert code == 0, err
    assert listed == text  # streaming prints the offline words
    assert f"{wavs[0]} (partial): YES" in err
    code, data, err = _main(capsys, bundle, "--data", str(yesno_bundles.data / "test"), "--cmvn", "speaker")
    assert code == 0, err
    first = data.splitlines()[0].split()
    assert first[0] == utts[0] and first[1:] == refs[utts[0]]


@pytest.mark.slow
def test_cli_in_a_new_process(yesno_bundles, tmp_path):
    wav = yesno_bundles.test_wavs(1)[0][1]
    ok = _cli(str(yesno_bundles.gmm), wav)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{wav} YES NO NO NO NO NO NO NO\n"
    missing = _cli(str(yesno_bundles.gmm), str(tmp_path / "absent.wav"))
    assert missing.returncode == 1 and f"error: {tmp_path / 'absent.wav'}: audio file not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_errors_name_the_file(yesno_bundles, tmp_path, capsys):
    bundle = str(yesno_bundles.gmm)
    code, _, err = _main(capsys, bundle, str(tmp_path / "absent.wav"), str(tmp_path / "b.wav"))
    assert code == 1 and f"error: {tmp_path / 'absent.wav'}: audio file not found (and 1 more)" in err
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    code, _, err = _main(capsys, bundle, str(corrupt))
    assert code == 1 and f"error: {corrupt}: cannot read audio" in err
    with pytest.raises(SystemExit) as usage:
        main([bundle])
    assert usage.value.code == 2 and "exactly one of them" in capsys.readouterr().err
    wav = yesno_bundles.test_wavs(1)[0][1]
    code, _, err = _main(capsys, bundle, wav, "--cmvn", "speaker")
    assert code == 1 and "--cmvn speaker needs --data" in err
    code, _, err = _main(capsys, bundle, wav, "--cmvn", "utterance", "--stream")
    assert code == 1 and "needs the whole recording" in err
    code, _, err = _main(capsys, str(tmp_path), wav)
    assert code == 1 and "not a model bundle: no manifest.json" in err
    # the library raises our InputError naming the file
    recognizer = Recognizer(yesno_bundles.gmm)
    with pytest.raises(InputError, match="cannot read audio") as raised:
        recognizer.transcribe_file(corrupt)
    assert raised.value.path == os.fspath(corrupt)
    with pytest.raises(ConfigError, match="needs the whole recording"):
        Recognizer(yesno_bundles.gmm, cmvn="utterance").stream("x", 8000)
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(100, dtype=np.float32), 8000)
    with pytest.raises(InputError, match=r"short.wav: the audio \(0.013 s\) is shorter than one 25 ms window"):
        recognizer.transcribe_file(short)
    session = recognizer.stream(str(short), 8000)
    session.accept_audio(np.zeros(100, dtype=np.float32))
    with pytest.raises(InputError, match="shorter than one 25 ms window"):
        session.finish()
