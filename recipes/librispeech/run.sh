#!/usr/bin/env bash
# Recipe for mini_librispeech (openslr 31: train-clean-5, 1519 utterances, 5 h; dev-clean-2, 1089, 2 h), decoded
# with the official small trigram of LibriSpeech (openslr 11: 3-gram.pruned.1e-7, Kaldi's "tgsmall").
#
#   bash recipes/librispeech/run.sh [--stage N] [--stop-stage M] [--corpus DIR] [--download true] [--jobs 2]
#                                   [--lexicon auto|cmudict|FILE] [--lm-arpa FILE]
#   --skip-bad true: unreadable audio is left out (listed and counted by feature extraction, scored as
#   deletions and listed in results.json by decoding) instead of stopping the recipe
#
# Stages:
#   0  data dirs: data/librispeech/{train_clean_5,dev_clean_2}; with --download true, first fetch what is
#      missing: the two subsets to <corpus>/LibriSpeech and the LM files to <corpus>/lm
#   1  lexicon for the LM's and the training text's words (--lexicon: auto = <corpus>/lm/librispeech-lexicon.txt
#      when present, else CMUdict; training words without a pronunciation become <UNK>), lang dir, the LM
#      (--lm-arpa, default <corpus>/lm/3-gram.pruned.1e-7.arpa.gz) restricted to the lang's words:
#      data/librispeech/lang, data/librispeech/lang_test_tgsmall (G.fst)
#   2  features (fbank 40 and MFCC 13, CMVN per speaker = reader-chapter)
#   3  monophone GMM-HMM on train_clean_5:                 exp/librispeech/mono
#   4  mono graph (lang_test_tgsmall) and decode of dev_clean_2 with LM weights 7..17 (mini_librispeech has no
#      test set: the best weight and its WER are on dev, as in Kaldi's RESULTS):  exp/librispeech/mono/decode_dev_clean_2
#   5  triphone GMM-HMM from the mono alignments:           exp/librispeech/tri1
#   6  tri1 graph and decode, as stage 4:                   exp/librispeech/tri1/decode_dev_clean_2
#   7  DNN depth sweep on the tri1 senones (Hydra multirun of python -m asr.train, one run dir each, each
#      decoded like stage 4 with tri1's graph):               exp/librispeech/dnn/mlp_d<depth>_w<width>
#   8  report: WER by hidden layers vs the GMMs (Markdown, CSV, PNG):  exp/librispeech/report/wer_by_depth.*
#
# DNN options: --dnn-depths 1,2,4,8 --dnn-overrides "width=512 trainer.epochs=4" (any asr.train overrides)
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0
stop_stage=100
corpus=${ASR_CORPORA:-../shared/corpora}/librispeech
download=false
lexicon=auto
lm_arpa=""
jobs=$(nproc)
decode_jobs=2
skip_bad=false
lm_weights=7:17
data=data/librispeech
exp=exp/librispeech
dnn_depths=1,2,4,8
dnn_overrides=""
. recipes/stage_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

train=train_clean_5
dev=dev_clean_2
[ -n "$lm_arpa" ] || lm_arpa="$corpus/lm/3-gram.pruned.1e-7.arpa.gz"

if run_stage 0; then
  echo "stage 0: data dirs from $corpus"
  case "$download" in
    true) download_flag=--download ;;
    false) download_flag="" ;;
    *) echo "$0: --download must be true or false, got '$download'" >&2; exit 1 ;;
  esac
  # shellcheck disable=SC2086  # download_flag is empty or one word
  python -m asr.data.prepare librispeech --root "$corpus" --out "$data" $download_flag "${skip_bad_opts[@]}"
fi

if run_stage 1; then
  echo "stage 1: lexicon, lang dir and the LM ($lm_arpa)"
  if [ ! -f "$lm_arpa" ]; then
    echo "$0: no LM $lm_arpa: run stage 0 with --download true, or pass --lm-arpa FILE" >&2
    exit 1
  fi
  if [ "$lexicon" = auto ]; then
    lexicon=cmudict
    [ -f "$corpus/lm/librispeech-lexicon.txt" ] && lexicon="$corpus/lm/librispeech-lexicon.txt"
  fi
  mkdir -p "$data/local"
  python -m asr.data.corpora.librispeech lexicon --source "$lexicon" --arpa "$lm_arpa" \
    --words-from "$data/$train/text" --out "$data/local/lexicon.txt"
  python -m asr.lang.prepare_lang --dict "$data/local/lexicon.txt" --words-from "$data/$train/text" \
    --oov-word '<UNK>' --out "$data/lang"
  python -m asr.data.corpora.librispeech filter-arpa --arpa "$lm_arpa" --lang "$data/lang" \
    --out "$data/local/lm_tgsmall.arpa"
  python -m asr.lang.grammar --lang "$data/lang" --kind arpa --arpa "$data/local/lm_tgsmall.arpa" \
    --out "$data/lang_test_tgsmall"
fi

if run_stage 2; then
  echo "stage 2: features for: $train $dev"
  for set in $train $dev; do
    python -m asr.features.compute --data "$data/$set" --type fbank --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
    python -m asr.features.compute --data "$data/$set" --type mfcc --cmvn speaker --jobs "$jobs" "${skip_bad_opts[@]}"
  done
fi

# Graph from lang_test_tgsmall, decode dev sweeping the LM weight (no test set).
graph_and_decode() {
  local system=$1
  python -m asr.graph.mkgraph --lang "$data/lang_test_tgsmall" --model "$exp/$system" --out "$exp/$system/graph_tgsmall"
  python -m asr.decode.decode_dir --graph "$exp/$system/graph_tgsmall" --model "$exp/$system" "${skip_missing_opts[@]}" --data "$data/$dev" \
    --out "$exp/$system/decode_$dev" --lm-weights "$lm_weights" --jobs "$decode_jobs"
}

if run_stage 3; then
  echo "stage 3: monophone GMM-HMM"
  python -m asr.gmm.train_mono --data "$data/$train" --lang "$data/lang" --out "$exp/mono" --jobs "$jobs"
fi

if run_stage 4; then
  echo "stage 4: mono graph and decoding"
  graph_and_decode mono
fi

if run_stage 5; then
  echo "stage 5: triphone GMM-HMM (tri1) from the mono alignments"
  python -m asr.gmm.train_tri --data "$data/$train" --lang "$data/lang" --ali-dir "$exp/mono" --out "$exp/tri1"
fi

if run_stage 6; then
  echo "stage 6: tri1 graph and decoding"
  graph_and_decode tri1
fi

if run_stage 7; then
  echo "stage 7: DNN depth sweep (depth=$dnn_depths) on the tri1 alignments"
  # gmm_dir and the sweep dir from --exp (exp_root alone would mean <dirname of --exp>/librispeech)
  # shellcheck disable=SC2086  # dnn_overrides is a list of Hydra overrides
  python -m asr.train -m "skip_bad=$skip_bad" corpus=librispeech "corpus.data_dir=$data" "exp_root=$(dirname "$exp")" "gmm_dir=$exp/tri1" \
    "hydra.sweep.dir=$exp/dnn" "decode.lm_weights=$lm_weights" prepare=false \
    trainer.progress=log "decode.sets=[$dev]" "depth=$dnn_depths" $dnn_overrides
fi

if run_stage 8; then
  echo "stage 8: report"
  python -m asr.report "$exp" --sets "$dev" --baseline tri1 --out "$exp/report/wer_by_depth"
fi

echo "librispeech recipe: done (stages $stage..$stop_stage)"
