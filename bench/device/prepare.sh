#!/usr/bin/env bash
# Run HERE, before a device session: put into .whl/ the wheels the lent GPU machine lacks (it has
# JAX, numpy, h5py, rich, ml_dtypes; no Keras, Keras Tuner, lark or PyYAML, and no network) and
# the shared CIFAR-10 container into .data/. Both folders are git-ignored and travel with
# `carry: [".whl", ".data"]` (about 52 MiB of the 64 MiB allowed).
#
#   bash bench/device/prepare.sh            # wheels for the device's Python 3.12
#   PYVER=3.11 WHL=/tmp/whl311 bash bench/device/prepare.sh   # wheels for this machine (to test)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER="${PYVER:-3.12}"
WHL="${WHL:-.whl}"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHL" \
  keras==3.15.1 namex optree absl-py packaging keras-tuner==1.4.8 kt-legacy six lark PyYAML
mkdir -p .data
cp ../shared/data/cifar10/train.npz ../shared/data/cifar10/decode.py .data/
du -sh "$WHL" .data
