#!/usr/bin/env bash
# Recipe for CMU AN4 (census): training part with a speaker-disjoint dev split (10 speakers, see
# ../shared/corpora/README.md), test part when it is on disk.
#
#   bash recipes/an4/run.sh [--stage N] [--stop-stage M] [--corpus DIR] [--jobs 2]
#   --skip-bad true: unreadable audio is left out (listed and counted by feature extraction, scored as
#   deletions and listed in results.json by decoding) instead of stopping the recipe
#
# Stages:
#   0  data dirs:   data/an4/{train,dev,train_all[,test]}   (train: 64 speakers, 823 utts; dev: 10, 125)
#   1  lang dir from an4.dic; trigram KN LM from the 823 training transcripts only:
#      data/an4/lang, data/an4/lang_test_tg (G.fst)
#   2  features (fbank 40 and MFCC 13, CMVN per speaker)
#   3  monophone GMM-HMM on train:                        exp/an4/mono
#   4  mono graph (lang_test_tg) and decodes: dev with LM weights 7..17 (best picked on dev, the WER at
#      LM weight 10 printed too), test (when present) at the dev-picked weight: exp/an4/mono/decode_{dev,test}
#   5  triphone GMM-HMM from the mono alignments:          exp/an4/tri1
#   6  tri1 graph and decodes, as stage 4:                  exp/an4/tri1/decode_{dev,test}
#   7  DNN depth sweep on the tri1 senones (Hydra multirun of python -m asr.train, one run dir each, each
#      decoded like stage 4 with tri1's graph):               exp/an4/dnn/mlp_d<depth>_w<width>
#   8  report: WER by hidden layers vs the GMMs (Markdown, CSV, PNG):  exp/an4/report/wer_by_depth.*
#   9  LDA+MLLT triphones (tri2b) from the tri1 alignments:  exp/an4/tri2b
#  10  tri2b graph and decodes, as stage 4:                   exp/an4/tri2b/decode_{dev,test}
#  11  speaker adaptive training with fMLLR (tri3b) from the tri2b alignments:  exp/an4/tri3b
#  12  tri3b graph and two-pass fMLLR decodes (speaker-independent first pass with the alignment model,
#      per-speaker fMLLR, adapted pass):                     exp/an4/tri3b/decode_{dev,test}
#  13  fMLLR features (40-dim LDA+MLLT+per-speaker fMLLR of tri3b; dev/test speakers' transforms from the
#      stage-12 first pass):                                 data/an4/<set>/fmllr.h5
#  14  DNN on fMLLR features (11-frame window) with the tri3b senones, decoded with tri3b's graph:
#                                                            exp/an4/dnn/mlp_d<depth>_w512_fmllr
#
# DNN options: --dnn-depths 1,2,4,8 --fmllr-dnn-depths 2,4,6 --dnn-overrides "width=512 trainer.epochs=4" (any
# asr.train overrides). Stage 14 decodes with LM weights 7..13 (DNN searches at higher weights are slow) and
# exports no bundle (bundles do not carry fMLLR transforms yet).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
corpus=${ASR_CORPORA:-../shared/corpora}/an4
jobs=$(nproc)
decode_jobs=2
skip_bad=false
lm_weights=7:17
data=data/an4
exp=exp/an4
dnn_depths=1,2,4,8
dnn_overrides=""
fmllr_dnn_depths=2,4,6
. recipes/stage_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  echo "stage 0: data dirs from $corpus"
  python -m asr.data.prepare an4 --root "$corpus" --out "$data" "${skip_bad_opts[@]}"
fi

sets="train dev"
[ -d "$data/test" ] && sets="$sets test"

if run_stage 1; then
  echo "stage 1: lang dir and trigram LM (training transcripts only)"
  python -m asr.lang.prepare_lang --dict "$data/local/an4.dic" --out "$data/lang"
  python -m asr.lang.prepare_lm --text "$data/train/text" --lang "$data/lang" --order 3 --method kn \
    --eval-text "$data/dev/text" --out "$data/lang/lm_tg.arpa"
  python -m asr.lang.grammar --lang "$data/lang" --kind arpa --arpa "$data/lang/lm_tg.arpa" --out "$data/lang_test_tg"
fi

if run_stage 2; then
  echo "stage 2: features for: $sets"
  for set in $sets; do
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
  if [ -d "$data/test" ]; then
    python -m asr.decode.decode_dir --graph "$exp/$system/graph_tg" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/test" \
      --out "$exp/$system/decode_test" --lm-weight-from "$exp/$system/decode_dev/results.json" --jobs "$decode_jobs"
  fi
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
  python -m asr.train -m "skip_bad=$skip_bad" corpus=an4 corpus.gmm=tri1 "corpus.data_dir=$data" "exp_root=$(dirname "$exp")" \
    prepare=false trainer.progress=log "depth=$dnn_depths" $dnn_overrides
fi

if run_stage 8; then
  echo "stage 8: report"
  python -m asr.report "$exp" --sets dev,test --baseline tri1 --out "$exp/report/wer_by_depth"
fi

if run_stage 9; then
  echo "stage 9: LDA+MLLT triphones (tri2b) from the tri1 alignments"
  python -m asr.gmm.train_lda_mllt --data "$data/train" --lang "$data/lang" --ali-dir "$exp/tri1" --out "$exp/tri2b"
fi

if run_stage 10; then
  echo "stage 10: tri2b graph and decoding"
  graph_and_decode tri2b
fi

if run_stage 11; then
  echo "stage 11: speaker adaptive training (tri3b) from the tri2b alignments"
  python -m asr.gmm.train_sat --data "$data/train" --lang "$data/lang" --ali-dir "$exp/tri2b" --out "$exp/tri3b"
fi

if run_stage 12; then
  echo "stage 12: tri3b graph and two-pass fMLLR decoding"
  python -m asr.graph.mkgraph --lang "$data/lang_test_tg" --model "$exp/tri3b" --out "$exp/tri3b/graph_tg"
  python -m asr.decode.decode_fmllr --graph "$exp/tri3b/graph_tg" --model "$exp/tri3b" "${skip_missing_opts[@]}" --data "$data/dev" \
    --out "$exp/tri3b/decode_dev" --lm-weights "$lm_weights" --jobs "$decode_jobs"
  if [ -d "$data/test" ]; then
    python -m asr.decode.decode_fmllr --graph "$exp/tri3b/graph_tg" --model "$exp/tri3b" "${skip_missing_opts[@]}" --data "$data/test" \
      --out "$exp/tri3b/decode_test" --lm-weight-from "$exp/tri3b/decode_dev/results.json" --jobs "$decode_jobs"
  fi
fi

if run_stage 13; then
  echo "stage 13: fMLLR features from tri3b"
  python -m asr.gmm.fmllr_features --data "$data/train" --model "$exp/tri3b" --transforms "$exp/tri3b/trans.pt" \
    --out "$data/train/fmllr.h5"
  for set in dev test; do
    [ -f "$exp/tri3b/decode_$set/trans.pt" ] || continue
    python -m asr.gmm.fmllr_features --data "$data/$set" --model "$exp/tri3b" \
      --transforms "$exp/tri3b/decode_$set/trans.pt" --out "$data/$set/fmllr.h5"
  done
fi

if run_stage 14; then
  echo "stage 14: DNN on fMLLR features (depth=$fmllr_dnn_depths), tri3b senones"
  # shellcheck disable=SC2086  # dnn_overrides is a list of Hydra overrides
  python -m asr.train -m "skip_bad=$skip_bad" corpus=an4 "corpus.data_dir=$data" "exp_root=$(dirname "$exp")" prepare=false \
    corpus.gmm=tri3b data.feature_type=fmllr data.left_context=5 data.right_context=5 \
    'name=${model.name}_d${model.depth}_w${model.width}_fmllr' decode.bundle=false decode.lm_weights=7:13 \
    trainer.progress=log "depth=$fmllr_dnn_depths" $dnn_overrides
fi

echo "an4 recipe: done (stages $stage..$stop_stage)"
