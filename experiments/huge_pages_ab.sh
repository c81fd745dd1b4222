#!/usr/bin/env bash
# The default main job with and without glibc's huge-page tunable, alternating, ROUNDS rounds
# (docs/performance.md, "The allocator without a restart"). Build the dataset and let the
# runtime cache its choice first (one plain run), so that only training differs.
#   bash experiments/huge_pages_ab.sh [ROUNDS=2] [OUT=/tmp/huge_pages_ab]
set -euo pipefail
rounds=${1:-2}
out=${2:-/tmp/huge_pages_ab}
mkdir -p "$out"
for round in $(seq "$rounds"); do
  for mode in off on; do
    run="$out/$mode$round"
    rm -rf "$run"
    if [ "$mode" = on ]; then tunables=glibc.malloc.hugetlb=1; else tunables=; fi
    GLIBC_TUNABLES=$tunables /usr/bin/time -v python -m muscle_jax.main --config=configs/default.py \
      --workdir="$run" > "$run.log" 2>&1
    python - "$run" "$mode$round" <<'PY'
import json, re, sys
run, name = sys.argv[1:]
timing = json.load(open(f"{run}/results.json"))["timing"]
log = open(f"{run}.log").read()
def field(label):
    return re.search(re.escape(label) + r": (.*)", log).group(1)
print(name, f"train_s {timing['train_s']:.1f}", "kernel_s", field("System time (seconds)"),
      "page_faults", field("Minor (reclaiming a frame) page faults"),
      "peak_rss_kb", field("Maximum resident set size (kbytes)"), flush=True)
PY
  done
done
