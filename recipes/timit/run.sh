#!/usr/bin/env bash
# Recipe for TIMIT (LDC93S1, licensed by the LDC: put the disc's TIMIT folder, holding TRAIN/ and TEST/, at
# --corpus): phone recognition scored as phone error rate (PER) on the 39 classes of Lee & Hon (1989), on the
# 24-speaker core test set, tuned on the 50-speaker dev set (local/*_speakers.txt, local/phones.61-48-39.map).
#
#   bash recipes/timit/run.sh [--stage N] [--stop-stage M] [--corpus DIR] [--jobs 2]
#   --skip-bad true: unreadable audio is left out (listed and counted by feature extraction, scored as
#   deletions and listed in results.json by decoding) instead of stopping the recipe
#
# Stages:
#   0  data dirs, SA sentences excluded, text = the .PHN phones folded to the 39 classes:
#      data/timit/{train,dev,test}   (462 speakers, 3696 utts; 50, 400; 24, 192)
#   1  lang dir whose words are the 39 phone classes (local/lexicon_39.txt; no optional silence: sil is a
#      word) and a Witten-Bell phone bigram from the training transcripts: data/timit/lang, data/timit/lang_test_bg
#   2  features (fbank 40 and MFCC 13, CMVN per speaker)
#   3  monophone GMM-HMM on train (3-state silence, as Kaldi's TIMIT recipe):  exp/timit/mono
#   4  mono graph (lang_test_bg); decode dev with LM weights 1..10 (best picked on dev), test at the dev-picked
#      weight; prints the PERs:                              exp/timit/mono/decode_{dev,test}
#   5  triphone GMM-HMM from the mono alignments:           exp/timit/tri1
#   6  tri1 graph and decodes, as stage 4:                   exp/timit/tri1/decode_{dev,test}
#   7  DNN depth sweep on the tri1 senones (Hydra multirun of python -m asr.train, one run dir each, each
#      decoded like stage 4 with tri1's graph):               exp/timit/dnn/mlp_d<depth>_w<width>
#   8  report: error rate by hidden layers vs the GMMs (the "WER" columns are PERs), and the PER of every decode
#
# The results.json of every decode holds the PER in its "wer" field: the words of this lang are phones.
# DNN options: --dnn-depths 1,2,4,8 --dnn-overrides "width=512 trainer.epochs=4" (any asr.train overrides)
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
corpus=${ASR_CORPORA:-../shared/corpora}/timit
dev_list=recipes/timit/local/dev_speakers.txt
test_list=recipes/timit/local/core_test_speakers.txt
jobs=$(nproc)
decode_jobs=2
skip_bad=false
lm_weights=1:10
data=data/timit
exp=exp/timit
dnn_depths=1,2,4,8
dnn_overrides=""
. recipes/stage_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  echo "stage 0: data dirs from $corpus"
  python -m asr.data.prepare timit --root "$corpus" --out "$data" --phone-set 39 "${skip_bad_opts[@]}" \
    --phone-map recipes/timit/local/phones.61-48-39.map --dev-list "$dev_list" --test-list "$test_list"
fi

if run_stage 1; then
  echo "stage 1: phone lang dir and phone bigram LM (training transcripts only)"
  python -m asr.lang.prepare_lang --dict recipes/timit/local/lexicon_39.txt --words-from "$data"/{train,dev,test}/text \
    --sil-prob 0 --out "$data/lang"
  # Witten-Bell, as the IRSTLM bigram of Kaldi's TIMIT recipe.
  python -m asr.lang.prepare_lm --text "$data/train/text" --lang "$data/lang" --order 2 --method wb \
    --eval-text "$data/dev/text" --out "$data/lang/lm_bg.arpa"
  python -m asr.lang.grammar --lang "$data/lang" --kind arpa --arpa "$data/lang/lm_bg.arpa" --out "$data/lang_test_bg"
fi

if run_stage 2; then
  echo "stage 2: features"
  for set in train dev test; do
    python -m asr.features.compute --data "$data/$set" --type fbank --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
    python -m asr.features.compute --data "$data/$set" --type mfcc --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
  done
fi

# Graph from lang_test_bg, decode dev sweeping the LM weight, test at the weight picked on dev; print the PERs.
graph_and_decode() {
  local system=$1
  python -m asr.graph.mkgraph --lang "$data/lang_test_bg" --model "$exp/$system" --out "$exp/$system/graph_bg"
  python -m asr.decode.decode_dir --graph "$exp/$system/graph_bg" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/dev" \
    --out "$exp/$system/decode_dev" --lm-weights "$lm_weights" --jobs "$decode_jobs"
  python -m asr.decode.decode_dir --graph "$exp/$system/graph_bg" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/test" \
    --out "$exp/$system/decode_test" --lm-weight-from "$exp/$system/decode_dev/results.json" --jobs "$decode_jobs"
  print_per "$exp/$system"
}

print_per() {
  local set
  for set in dev test; do
    echo -n "$1 $set: "
    python -m asr.score --ref "$data/$set/text" --hyp "$1/decode_$set/hyp.txt" --label PER
  done
}

if run_stage 3; then
  echo "stage 3: monophone GMM-HMM"
  python -m asr.gmm.train_mono --data "$data/train" --lang "$data/lang" --out "$exp/mono" --num-silence-states 3
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
  # gmm_dir and the sweep dir from --exp (exp_root alone would mean <dirname of --exp>/timit)
  # shellcheck disable=SC2086  # dnn_overrides is a list of Hydra overrides
  python -m asr.train -m "skip_bad=$skip_bad" corpus=timit "corpus.data_dir=$data" "exp_root=$(dirname "$exp")" "gmm_dir=$exp/tri1" \
    "hydra.sweep.dir=$exp/dnn" "decode.lm_weights=$lm_weights" prepare=false \
    trainer.progress=log "depth=$dnn_depths" $dnn_overrides
fi

if run_stage 8; then
  echo "stage 8: report (PER)"
  python -m asr.report "$exp" --sets dev,test --baseline tri1 --out "$exp/report/per_by_depth"
  for dir in "$exp"/mono "$exp"/tri1 "$exp"/dnn/*; do
    if [ -f "$dir/decode_test/hyp.txt" ]; then print_per "$dir"; fi
  done
fi

echo "timit recipe: done (stages $stage..$stop_stage)"
