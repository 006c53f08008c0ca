#!/usr/bin/env bash
# Recipe for the embedded synthetic corpus (espeak-ng voices, made offline; see asr/data/corpora/synth.py).
#
#   bash recipes/synth/run.sh [--stage N] [--stop-stage M] [--minutes 40] [--seed 0] [--jobs 2]
#
# Stages:
#   0  make the corpus and its data dirs:       data/synth/{train,dev,test}
#   1  lang dir (CMUdict lexicon), trigram LM:  data/synth/lang, data/synth/lang_test_tg (G.fst)
#   2  features (40 fbank for the DNN, 13 MFCC for the GMM), CMVN per speaker: data/synth/<set>/{fbank,mfcc}.h5
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
minutes=40
seed=0
jobs=$(nproc)
data=data/synth
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
    python -m asr.features.compute --data "$data/$set" --type fbank --cmvn speaker --jobs "$jobs"
    python -m asr.features.compute --data "$data/$set" --type mfcc --cmvn speaker --jobs "$jobs"
  done
fi

echo "synth recipe: done (stages $stage..$stop_stage)"
