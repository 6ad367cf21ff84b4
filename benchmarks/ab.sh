#!/usr/bin/env bash
# A/B a working-tree change on the 3-member zookapter ensemble benchmark:
# A = HEAD (the change stashed), B = the working tree, alternated N times so that drift of the
# host's speed hits both alike. Prints ops/s per op for each run.
#   N=3 OPS=set,create DUR=5 benchmarks/ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}; OPS=${OPS:-set,create}; DUR=${DUR:-5}
PY=${PY:-.venv/bin/python}
run() {
    timeout 600 "$PY" benchmarks/ensemble.py --only zookapter --ops "$OPS" --duration "$DUR" \
        --warmup 3 --rounds 1 --no-write 2>&1 | grep -E "^   (get|set|create):" \
        | awk '{printf "%s %s  ", $1, $2}'
}
for _ in $(seq 1 "$N"); do
    git stash -q
    a=$(run || true)
    git stash pop -q
    echo "A $a"
    echo "B $(run || true)"
done
