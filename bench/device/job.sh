#!/usr/bin/env bash
# Run ON THE DEVICE, from the repository root, with .whl/ and .data/ carried (bench/device/prepare.sh
# made them). One job per device call; each fits the 8-minute call the issues ask for.
#
#   bash bench/device/job.sh nas1         # issue 5, call 1: search (~6.5 min), archive to $OUT/nas.tar.gz
#   bash bench/device/job.sh nas2         # call 2: copy that nas.tar.gz into .data/ first; resumes the
#                                         # search, then trains best.yaml for 30 epochs (~7 min)
#   bash bench/device/job.sh throughput   # issue 6: ResNet-50/VGG16 vs keras.applications and torch (~4 min)
#   bash bench/device/job.sh cifar10      # ResNet-9 speed, hand loop vs kblocks train (~2 min)
#
# BUDGET=seconds overrides a job's time budget; PYTHON=... the interpreter (default python3).
set -euo pipefail
job="${1:?give a job: nas1, nas2, throughput or cifar10}"
shift
case "$job" in nas1|nas2|throughput|cifar10) ;;
  *) echo "unknown job $job: use nas1, nas2, throughput or cifar10" >&2; exit 2 ;;
esac
PY="${PYTHON:-python3}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
"$PY" -m pip install -q --no-index --no-deps --target /tmp/site "${WHL:-.whl}"/*.whl
export PYTHONPATH="/tmp/site:$PWD" KERAS_BACKEND="${KERAS_BACKEND:-jax}" PYTHONUNBUFFERED=1 \
  KBLOCKS_CACHE="${KBLOCKS_CACHE:-/tmp/kbcache}" TF_CPP_MIN_LOG_LEVEL=2
"$PY" - <<'PY'
import jax, keras
print(f"device job: keras {keras.__version__} on {keras.backend.backend()}, "
      f"jax {jax.__version__}, {jax.devices()[0].device_kind}", flush=True)
PY
case "$job" in
  nas1)
    "$PY" bench/nas_cifar10.py --data .data/train.npz --out /tmp/nas \
      --time-budget "${BUDGET:-380}" --archive "$OUT/nas.tar.gz" "$@" ;;
  nas2)
    "$PY" bench/nas_cifar10.py --data .data/train.npz --out /tmp/nas --restore .data/nas.tar.gz \
      --resume --time-budget "${BUDGET:-400}" --final-epochs 30 --archive "$OUT/nas.tar.gz" \
      --final-out /tmp/final "$@" ;;
  throughput)
    "$PY" bench/throughput.py --models resnet50,vgg16 --profile --json "$OUT/throughput.json" "$@" ;;
  cifar10)
    "$PY" bench/cifar10_speed.py --data .data/train.npz --with-trainer "$@" ;;
esac
