#!/usr/bin/env bash
# Capture the gpu-core trace suite on one H200 in a single command (see docs/traces.md).
#   bash scripts/gpu_capture.sh            # writes into $OUT if set, else hwspecs/h200-sxm-141gb/traces/
# Needs only torch (2.x with CUDA) and numpy. Takes about 7.5 minutes: a pre-flight of every code
# path on tiny shapes (at most 90 s), then the suite under a 400 s budget (BUDGET_S to change it).
# Every python run sits under `timeout -s INT`: an interrupt writes the remaining cases as
# skipped:interrupted and finalizes the env JSON, so a slow run ends cleanly inside the device's
# per-command limit instead of being killed mid-file.
# PYTHON picks the interpreter (default: python, else python3).
set -euo pipefail
export PYTHONUNBUFFERED=1

cd "$(dirname "$0")/.."
out_dir="${OUT:-hwspecs/h200-sxm-141gb/traces}"
budget_s="${BUDGET_S:-400}"
py="${PYTHON:-$(command -v python || command -v python3)}"
mkdir -p "$out_dir"

nvidia-smi || echo "nvidia-smi not available"
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

# Pre-flight: one tiny case per code path (fp8, int8, 2:4 both backends, CSR, BSR, triton, each
# attention backend, the layer). Its own CSV lands next to the main one; a failure here is data.
timeout --preserve-status -s INT -k 20 90 "$py" -m simulator.capture --suite smoke --device cuda --out "$out_dir" \
  --budget-s 45 --case-timeout-s 60 || echo "smoke suite exited $?" >&2

# The suite. If the process dies (a library crash, a lost CUDA context: exit 3), run it again with
# --resume and the time left: it keeps the rows written so far, records the case that crashed as
# error:crashed and skips the rest of that case's group.
start=$SECONDS
rc=0
for attempt in 1 2 3; do
  left=$(( budget_s - (SECONDS - start) ))
  if (( left < 30 )); then
    echo "no budget left for another attempt" >&2
    break
  fi
  set +e
  resume=()
  (( attempt > 1 )) && resume=(--resume)
  timeout --preserve-status -s INT -k 20 "$(( left + 30 ))" \
    "$py" -m simulator.capture --suite gpu-core --out "$out_dir" --budget-s "$left" ${resume[@]+"${resume[@]}"}
  rc=$?
  set -e
  if (( rc == 0 || rc == 2 || rc == 130 )); then
    break
  fi
  echo "gpu-core attempt $attempt exited $rc; resuming" >&2
done

nvidia-smi --query-gpu=clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,driver_version,name,power.limit --format=csv || true
ls -la "$out_dir"
exit "$rc"
