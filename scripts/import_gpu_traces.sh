#!/usr/bin/env bash
# After `bash scripts/gpu_capture.sh` ran on a GPU: bring its files home and run the steps of
# docs/validation.md in order. Traces are copied as they are (never edited).
#   bash scripts/import_gpu_traces.sh DIR [DEVICE]    # DIR: the run's $OUT; DEVICE default h200-sxm-141gb
# PLOT=path sets where the predicted-vs-measured chart goes (default docs/validation-<gpu>.png);
# NO_DOCS=1 leaves docs/ alone (the tests use both).
# Then read the printed tables, reread the prose next to any number refresh_doc_tables changed,
# and commit hwspecs/<device>/traces/, hwspecs/<device>/calibration.yaml, docs/.
set -euo pipefail
cd "$(dirname "$0")/.."
if (( $# < 1 )) || [[ ! -d "$1" ]]; then
  echo "import_gpu_traces: DIR: ${1:-(missing)} is not a folder; usage: bash scripts/import_gpu_traces.sh DIR [DEVICE]" >&2
  exit 2
fi
src="$1"
device="${2:-h200-sxm-141gb}"
py="${PYTHON:-$(command -v python || command -v python3)}"
dest="${SPARSIM_HWSPECS:-hwspecs}/$device/traces"

shopt -s nullglob
files=("$src"/*.csv "$src"/*.env.json)
if (( ${#files[@]} == 0 )); then
  echo "import_gpu_traces: no .csv or .env.json files in $src" >&2
  exit 2
fi
mkdir -p "$dest"
for f in "${files[@]}"; do
  if [[ -e "$dest/$(basename "$f")" ]]; then
    echo "import_gpu_traces: $dest/$(basename "$f") exists; not overwriting a measured trace" >&2
    exit 2
  fi
done
cp -v "${files[@]}" "$dest/"

"$py" -m simulator.cli calibrate --hw "$device"
plot="${PLOT:-docs/validation-${device%%-*}.png}"
set +e
"$py" -m simulator.cli validate --hw "$device" --plot "$plot" --targets
targets_rc=$?
set -e
if [[ -z "${NO_DOCS:-}" ]]; then
  "$py" scripts/refresh_doc_tables.py
fi
"$py" -m simulator.cli anchors
echo "import_gpu_traces: done (validate --targets exit code $targets_rc: 0 = every target met)"
