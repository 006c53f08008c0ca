#!/usr/bin/env bash
# Recipe for the embedded synthetic corpus (espeak-ng voices, made offline; see asr/data/corpora/synth.py).
#
#   bash recipes/synth/run.sh [--stage N] [--stop-stage M] [--minutes 40] [--seed 0] [--jobs 2]
#   --skip-bad true: unreadable audio is left out (listed and counted by feature extraction, scored as
#   deletions and listed in results.json by decoding) instead of stopping the recipe
#
# Stages:
#   0  make the corpus and its data dirs:       data/synth/{train,dev,test}
#   1  lang dir (CMUdict lexicon), trigram LM:  data/synth/lang, data/synth/lang_test_tg (G.fst)
#   2  features (40 fbank for the DNN, 13 MFCC for the GMM), CMVN per speaker: data/synth/<set>/{fbank,mfcc}.h5
#   3  monophone GMM-HMM on train:                     exp/synth/mono
#   4  mono graph (lang_test_tg); decode dev with LM weights 7..17 (best picked on dev), test at the
#      dev-picked weight:                              exp/synth/mono/decode_{dev,test}
#   5  triphone GMM-HMM from the mono alignments:      exp/synth/tri1
#   6  tri1 graph and decodes, as stage 4:              exp/synth/tri1/decode_{dev,test}
#   7  DNN depth sweep on the tri1 senones (Hydra multirun of python -m asr.train, one run dir each, each
#      decoded like stage 4 with tri1's graph):               exp/synth/dnn/mlp_d<depth>_w<width>
#   8  report: WER by hidden layers vs the GMMs (Markdown, CSV, PNG):  exp/synth/report/wer_by_depth.*
#
# DNN options: --dnn-depths 1,2,4,8 --dnn-overrides "width=512 trainer.epochs=4" (any asr.train overrides)
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
minutes=40
seed=0
jobs=$(nproc)
decode_jobs=2
skip_bad=false
lm_weights=7:17
data=data/synth
exp=exp/synth
dnn_depths=1,2,4,8
dnn_overrides=""
. recipes/stage_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  echo "stage 0: synthetic corpus -> $data"
  python -m asr.data.prepare synth --out "$data" --minutes "$minutes" --seed "$seed" --jobs "$jobs"
fi

if run_stage 1; then
  echo "stage 1: lang dir and trigram LM"
  python -m asr.lang.prepare_lang --dict cmudict --words-from "$data"/{train,dev,test}/text --out "$data/lang"
  python -m asr.lang.prepare_lm --text "$data/train/text" --lang "$data/lang" --order 3 --method kn \
    --eval-text "$data/dev/text" --out "$data/lang/lm_tg.arpa"
  python -m asr.lang.grammar --lang "$data/lang" --kind arpa --arpa "$data/lang/lm_tg.arpa" --out "$data/lang_test_tg"
fi

if run_stage 2; then
  echo "stage 2: features"
  for set in train dev test; do
    python -m asr.features.compute --data "$data/$set" --type fbank --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
    python -m asr.features.compute --data "$data/$set" --type mfcc --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
  done
fi

# Graph from lang_test_tg, decode dev sweeping the LM weight, test at the weight picked on dev.
graph_and_decode() {
  local system=$1
  python -m asr.graph.mkgraph --lang "$data/lang_test_tg" --model "$exp/$system" --out "$exp/$system/graph_tg"
  python -m asr.decode.decode_dir --graph "$exp/$system/graph_tg" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/dev" \
    --out "$exp/$system/decode_dev" --lm-weights "$lm_weights" --jobs "$decode_jobs"
  python -m asr.decode.decode_dir --graph "$exp/$system/graph_tg" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/test" \
    --out "$exp/$system/decode_test" --lm-weight-from "$exp/$system/decode_dev/results.json" --jobs "$decode_jobs"
}

if run_stage 3; then
  echo "stage 3: monophone GMM-HMM"
  python -m asr.gmm.train_mono --data "$data/train" --lang "$data/lang" --out "$exp/mono"
fi

if run_stage 4; then
  echo "stage 4: mono graph and decoding"
  graph_and_decode mono
fi

if run_stage 5; then
  echo "stage 5: triphone GMM-HMM (tri1) from the mono alignments"
  python -m asr.gmm.train_tri --data "$data/train" --lang "$data/lang" --ali-dir "$exp/mono" --out "$exp/tri1"
fi

if run_stage 6; then
  echo "stage 6: tri1 graph and decoding"
  graph_and_decode tri1
fi

if run_stage 7; then
  echo "stage 7: DNN depth sweep (depth=$dnn_depths) on the tri1 alignments"
  # shellcheck disable=SC2086  # dnn_overrides is a list of Hydra overrides
  python -m asr.train -m "skip_bad=$skip_bad" corpus=synth "corpus.data_dir=$data" "exp_root=$(dirname "$exp")" prepare=false \
    trainer.progress=log "depth=$dnn_depths" $dnn_overrides
fi

if run_stage 8; then
  echo "stage 8: report"
  python -m asr.report "$exp" --sets dev,test --baseline tri1 --out "$exp/report/wer_by_depth"
fi

echo "synth recipe: done (stages $stage..$stop_stage)"
