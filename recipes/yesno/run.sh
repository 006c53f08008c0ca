#!/usr/bin/env bash
# Recipe for Kaldi's yes/no corpus (60 files, 8 kHz, one speaker; train 31 / test 29).
#
#   bash recipes/yesno/run.sh [--stage N] [--stop-stage M] [--corpus DIR] [--jobs 2]
#
# Stages:
#   0  data dirs:                      data/yesno/{train,test}
#   1  lang dir (CMUdict lexicon) and a yes/no loop grammar: data/yesno/lang, data/yesno/lang_test (G.fst)
#   2  features (fbank 40 and MFCC 13, CMVN per speaker)
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
corpus=${ASR_CORPORA:-../shared/corpora}/yesno
jobs=$(nproc)
data=data/yesno
. recipes/stage_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if run_stage 0; then
  echo "stage 0: data dirs from $corpus"
  python -m asr.data.prepare yesno --root "$corpus" --out "$data"
fi

if run_stage 1; then
  echo "stage 1: lang dir and yes/no grammar"
  python -m asr.lang.prepare_lang --dict cmudict --words-from "$data"/{train,test}/text --out "$data/lang"
  python -m asr.lang.grammar --lang "$data/lang" --kind yesno --out "$data/lang_test"
fi

if run_stage 2; then
  echo "stage 2: features"
  for set in train test; do
    python -m asr.features.compute --data "$data/$set" --type fbank --cmvn speaker --jobs "$jobs"
    python -m asr.features.compute --data "$data/$set" --type mfcc --cmvn speaker --jobs "$jobs"
  done
fi

echo "yesno recipe: done (stages $stage..$stop_stage)"
