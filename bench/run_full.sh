#!/usr/bin/env bash
# The full benchmark run whose results are committed under bench/results/.
# Needs: pip install -e '.[bench]'  and  apt-get install -y etcd-server etcd-client
# Takes about 35 minutes on a quiet 2-core machine (longer on a busy one). Extra arguments go to `qcore bench run`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench/results}
"$PY" -m qcore.bench run --vs etcd --vs pysyncobj --out "$OUT" "$@" | tee "$OUT/run.log"
"$PY" -m qcore.bench scale --out "$OUT" | tee "$OUT/scale.log"
"$PY" -m qcore.bench snapshot --out "$OUT" | tee "$OUT/snapshot.log"
