# Sourced by recipes/<corpus>/run.sh: parses --stage N, --stop-stage M and --name value options into
# shell variables (icefall/Kaldi parse_options style). Unknown options are an error.
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) echo "usage: $0 [--stage N] [--stop-stage M] [--jobs J] [other options in the script header]"; exit 0 ;;
    --*=*) opt="${1%%=*}"; val="${1#*=}"; shift ;;
    --*) opt="$1"; val="${2:-}"; [ $# -ge 2 ] || { echo "$0: option $opt needs a value" >&2; exit 1; }; shift 2 ;;
    *) echo "$0: unexpected argument '$1'" >&2; exit 1 ;;
  esac
  var="${opt#--}"; var="${var//-/_}"
  if ! declare -p "$var" >/dev/null 2>&1; then echo "$0: unknown option $opt" >&2; exit 1; fi
  printf -v "$var" '%s' "$val"
done

# --skip-bad true (recipes that declare skip_bad): feature extraction leaves out unreadable audio (compute
# --skip-bad: logged, counted, listed in the archive) and decoding scores those utterances as deletions
# (decode --skip-missing: listed in results.json).
skip_bad_opts=()
skip_missing_opts=()
if [ "${skip_bad:-false}" = true ]; then
  skip_bad_opts=(--skip-bad)
  skip_missing_opts=(--skip-missing)
elif [ "${skip_bad:-false}" != false ]; then
  echo "$0: --skip-bad takes true or false, not '$skip_bad'" >&2; exit 1
fi
