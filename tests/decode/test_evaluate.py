"""asr.decode.evaluate: which sets are decoded at which LM weight, caching, and config errors."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from asr.decode.evaluate import EvaluationOptions, decode_sets, ensure_graph, parse_evaluation_options
from asr.errors import ConfigError


@pytest.mark.slow
def test_tune_set_first_others_at_its_weight_absent_sets_skipped_and_cache(yesno_recipe, tmp_path, caplog):
    model_dir = tmp_path / "mono"
    shutil.copytree(yesno_recipe.exp / "mono", model_dir)
    shutil.rmtree(model_dir / "decode_test")
    # yes/no has only train and test: "train" plays the tuning set here, "dev" is absent
    options = EvaluationOptions(sets=["dev", "test", "train"], tune_set="train", lm_weights="9:11", jobs=1)
    graph = ensure_graph(yesno_recipe.data / "lang_test", model_dir, model_dir / "graph")
    results = decode_sets(graph, model_dir, yesno_recipe.data, options, corpus="yesno")
    assert list(results) == ["train", "test"]  # tuning set first, dev skipped
    assert results["train"]["lm_weight_selection"] == "best on this set"
    assert set(results["train"]["wer_by_lm_weight"]) == {"9", "10", "11"}
    assert results["test"]["lm_weight"] == results["train"]["best_lmwt"]
    assert results["test"]["lm_weight_selection"].startswith("from ")
    assert results["test"]["model"]["kind"] == "gmm"
    # cached while newer than model.json; decoded again once the model changes
    stamp = (model_dir / "decode_test" / "results.json").stat().st_mtime_ns
    decode_sets(graph, model_dir, yesno_recipe.data, options)
    assert (model_dir / "decode_test" / "results.json").stat().st_mtime_ns == stamp
    later = stamp / 1e9 + 10
    os.utime(model_dir / "model.json", (later, later))
    decode_sets(graph, model_dir, yesno_recipe.data, EvaluationOptions(sets=["test"], tune_set=None, jobs=1))
    again = model_dir / "decode_test" / "results.json"
    assert again.stat().st_mtime_ns != stamp


def test_no_tuning_set_means_the_fixed_weight(yesno_recipe, tmp_path):
    model_dir = tmp_path / "mono"
    shutil.copytree(yesno_recipe.exp / "mono", model_dir, ignore=shutil.ignore_patterns("decode_*"))
    options = EvaluationOptions(sets=["test"], tune_set=None, lm_weight=8, jobs=1)
    results = decode_sets(model_dir / "graph", model_dir, yesno_recipe.data, options)
    assert results["test"]["lm_weight"] == 8 and results["test"]["lm_weight_selection"] == "fixed"


def test_config_section_errors():
    with pytest.raises(ConfigError, match="decode: unknown option.*beem"):
        parse_evaluation_options({"beem": 3})
    with pytest.raises(ConfigError, match="decode: could not convert"):
        parse_evaluation_options({"beam": "wide"})
    options = parse_evaluation_options({"sets": [], "enabled": True, "graph": "g"}, ("dev", None, "test"))
    assert options.sets == ["dev", "test"]


def test_missing_graph_without_lang_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no graph .*HCLG.fst and no lang dir"):
        ensure_graph(None, tmp_path, tmp_path / "graph")


def test_a_speaker_adapted_baseline_without_decodes_names_the_two_pass_command(yesno_recipe, tmp_path):
    model_dir = tmp_path / "tri3b"
    shutil.copytree(yesno_recipe.exp / "mono", model_dir, ignore=shutil.ignore_patterns("decode_*"))
    info = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps({**info, "adaptation": "fmllr"}))
    options = EvaluationOptions(sets=["test"], tune_set=None, jobs=1)
    with pytest.raises(ConfigError, match="speaker-adapted \\(fmllr\\) model: decode .* asr.decode.decode_fmllr"):
        decode_sets(model_dir / "graph", model_dir, yesno_recipe.data, options)


def test_skip_missing_decodes_a_set_with_skipped_utterances(yesno_recipe, tmp_path):
    """A test set whose archive lacks two utterances (the feature extractor skipped their audio): refused by
    default naming --skip-missing, decoded with ``skip_missing`` (the config's ``decode.skip_missing``, set by
    ``skip_bad=true``) with the two scored as deletions and listed."""
    from asr.errors import InputError
    from asr.features.archive import ArchiveWriter, FeatureArchive

    data = tmp_path / "data"
    shutil.copytree(yesno_recipe.data / "test", data / "test")
    with FeatureArchive(yesno_recipe.data / "test" / "mfcc.h5") as archive:
        keep = archive.utt_ids[2:]
        attrs = dict(archive.attrs)
        with ArchiveWriter(data / "test" / "mfcc.h5", archive.dim, attrs) as writer:
            for utt in keep:
                writer.append(utt, archive.read(utt))
            writer.set_skipped(archive.utt_ids[:2])
        skipped = archive.utt_ids[:2]
    model_dir = tmp_path / "mono"
    shutil.copytree(yesno_recipe.exp / "mono", model_dir, ignore=shutil.ignore_patterns("decode_*"))
    options = parse_evaluation_options({"sets": ["test"], "tune_set": None, "jobs": 1})
    with pytest.raises(InputError, match="--skip-missing"):
        decode_sets(model_dir / "graph", model_dir, data, options)
    options = parse_evaluation_options({"sets": ["test"], "tune_set": None, "jobs": 1, "skip_missing": True})
    results = decode_sets(model_dir / "graph", model_dir, data, options)["test"]
    assert results["skipped_bad_audio"] == skipped and results["num_skipped_bad_audio"] == 2
    assert results["utts"] == 29
    with pytest.raises(ConfigError, match="skip_missing must be true or false"):
        parse_evaluation_options({"skip_missing": "yes"})


def test_a_killed_set_decode_resumes_from_its_journal(yesno_recipe, tmp_path, caplog):
    """asr.train's evaluation (decode_sets, which hands a loaded model to decode_data_dir) keeps the decoding
    journal: a decode that died after some utterances is resumed, and the results equal an uninterrupted run's."""
    from asr.decode.acoustic_model import load_acoustic_model
    from asr.decode.decode_dir import decode_data_dir
    from asr.decode.decoder import DecoderOptions

    model_dir = tmp_path / "mono"
    shutil.copytree(yesno_recipe.exp / "mono", model_dir, ignore=shutil.ignore_patterns("decode_*"))
    options = EvaluationOptions(sets=["test"], tune_set=None, lm_weight=10, jobs=1)
    reference = decode_sets(model_dir / "graph", model_dir, yesno_recipe.data, options, force=True)["test"]
    (model_dir / "decode_test" / "results.json").unlink()

    class DiesAfter:  # the model dir's own model, failing like a killed process after 7 utterances
        def __init__(self, model, n):
            self.model, self.n = model, n

        def __getattr__(self, name):
            return getattr(self.model, name)

        def log_likelihoods(self, feats):
            if self.n == 0:
                raise RuntimeError("died")
            self.n -= 1
            return self.model.log_likelihoods(feats)

    dying = DiesAfter(load_acoustic_model(model_dir), 7)
    with pytest.raises(RuntimeError, match="died"):
        decode_data_dir(model_dir / "graph", model_dir, yesno_recipe.data / "test", model_dir / "decode_test",
                        lm_weights=[10.0], decoder_options=DecoderOptions(beam=options.beam,
                        max_active=options.max_active), jobs=1, model=dying, resumable=True)  # fmt: skip
    assert (model_dir / "decode_test" / ".decode_journal.jsonl").is_file()
    caplog.set_level("INFO", logger="asr.decode.journal")
    resumed = decode_sets(model_dir / "graph", model_dir, yesno_recipe.data, options)["test"]
    assert "resuming the decode: 7 utterances already decoded" in caplog.text
    assert not (model_dir / "decode_test" / ".decode_journal.jsonl").exists()
    for key in ("wer", "ins", "del", "sub", "utts", "words"):
        assert resumed[key] == reference[key]
    assert (model_dir / "decode_test" / "hyp.txt").read_text() == (
        yesno_recipe.exp / "mono/decode_test/hyp.txt"
    ).read_text()
