#!/usr/bin/env bash
# Proof that a refactoring changed no output: run an OLD checkout and this tree on the same inputs and
# compare. classify --json on three real recordings (two k/mode settings), the demo's events, a short
# training run (checkpoint tensors), ONNX export of one checkpoint (bytes) and build-index (items and
# vectors).
#
#   git worktree add /tmp/old <commit>; bash bench/check_same_outputs.sh /tmp/old [AMBIENT13_DIR]
#
# The training checks hold between trees that share the trainer's randomness: 0c63cc8..bde6479 (the
# restructure) did; the feature-cache trainer that followed draws per (seed, epoch, rank) on purpose, so
# against an older tree those two lines say DIFFERENT and the others still apply.
#
# Prints one line per check (SAME / DIFFERENT; a step that fails counts as DIFFERENT) and exits 1 if any differs.
set -uo pipefail
NEW="$(cd "$(dirname "$0")/.." && pwd)"
OLD="$(cd "$1" && pwd)"
DATA="${2:-$NEW/../shared/data/ambient13}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PY="${PYTHON:-python3}"
export OMP_NUM_THREADS=1
status=0
old() { (cd "$OLD" && "$PY" -m edge_asc "$@"); }  # python -m puts the current directory first on sys.path
new() { (cd "$NEW" && "$PY" -m edge_asc "$@"); }
report() { if [ "$2" = 0 ]; then echo "SAME       $1"; else echo "DIFFERENT  $1"; status=1; fi; }

same_events() {  # JSON lines equal but for wall_time and latency_ms (the demo nests its events; "#" lines are comments)
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
def plain(e):
    return {k: plain(v) if isinstance(v, dict) else v for k, v in e.items() if k not in ("wall_time", "latency_ms")}
def load(path):
    return [plain(json.loads(line)) for line in open(path) if not line.startswith("#")]
a, b = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if a == b and a else 1)
EOF
}

for rel in street_traffic/moodist__busy-street.flac rain/blanket__rain.flac office/noice__office.flac; do
    for opts in "--k 3 --mode window" "--k 5 --mode sliding"; do
        old classify "$DATA/$rel" --json $opts > "$WORK/old.jsonl" 2>/dev/null
        new classify "$DATA/$rel" --json $opts > "$WORK/new.jsonl" 2>/dev/null
        rc=0; same_events "$WORK/old.jsonl" "$WORK/new.jsonl" || rc=1
        report "classify $rel $opts ($(wc -l < "$WORK/new.jsonl") decisions)" $rc
    done
done

old demo --fast --json > "$WORK/old-demo.jsonl" 2>/dev/null
new demo --fast --json > "$WORK/new-demo.jsonl" 2>/dev/null
rc=0; same_events "$WORK/old-demo.jsonl" "$WORK/new-demo.jsonl" || rc=1
report "demo --fast --json ($(wc -l < "$WORK/new-demo.jsonl") events)" $rc

# a small dataset: two recordings of each of three classes
for rel in rain/blanket__rain.flac rain/moodist__light-rain.flac office/noice__office.flac office/moodist__office.flac \
           forest_birds/blanket__birds.flac forest_birds/noice__birds.flac; do
    mkdir -p "$WORK/data/$(dirname "$rel")"
    ln -s "$DATA/$rel" "$WORK/data/$rel"
done
old train --data "$WORK/data" --out "$WORK/old-run" --epochs 1 --threads 1 --chunk-seconds 10 > /dev/null 2>&1
new train --data "$WORK/data" --out "$WORK/new-run" --epochs 1 --threads 1 --chunk-seconds 10 > /dev/null 2>&1
rc=0
"$PY" - "$WORK/old-run/checkpoint.pt" "$WORK/new-run/checkpoint.pt" <<'EOF' || rc=1
import sys, torch
a = torch.load(sys.argv[1], weights_only=False)["model"]
b = torch.load(sys.argv[2], weights_only=False)["model"]
sys.exit(0 if a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) else 1)
EOF
report "train 1 epoch, 3 classes: checkpoint weights" $rc

old export "$WORK/old-run" --out "$WORK/old.onnx" > /dev/null 2>&1
new export "$WORK/old-run" --out "$WORK/new.onnx" > /dev/null 2>&1
rc=0; cmp -s "$WORK/old.onnx" "$WORK/new.onnx" || rc=1
report "export of one checkpoint: ONNX bytes ($(stat -c %s "$WORK/new.onnx" 2>/dev/null) bytes)" $rc

# each tree exports its own run: the same graph and weights, the same labels, features and model metadata
# but for the options this version no longer has (and the recorded training settings, which name them)
new export "$WORK/new-run" --out "$WORK/new-own.onnx" > /dev/null 2>&1
rc=0
(cd "$NEW" && "$PY" - "$WORK/old.onnx" "$WORK/new-own.onnx") <<'EOF' || rc=1
import json, sys
import onnx
a, b = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
meta = lambda m: json.loads(next(p.value for p in m.metadata_props if p.key == "edge_asc"))
from edge_asc.training.config import REMOVED_OPTIONS
ma, mb = meta(a), meta(b)
removed = {key.split(".", 1)[1] for key in REMOVED_OPTIONS if key.startswith("model.")}
ma["model"] = {k: v for k, v in ma["model"].items() if k not in removed}  # options this version no longer has
graph = a.graph.SerializeToString() == b.graph.SerializeToString()
fields = [k for k in ("labels", "features", "embedding_size", "variant", "model", "format") if ma[k] != mb[k]]
print(f"graph {'same' if graph else 'DIFFERENT'}; metadata differs in: {fields or 'nothing'}", file=sys.stderr)
sys.exit(0 if graph and not fields else 1)
EOF
report "export of each tree's own run: ONNX graph and model metadata" $rc

old build-index --model "$WORK/old.onnx" --data "$WORK/data" --out "$WORK/old-index" > /dev/null 2>&1
new build-index --model "$WORK/old.onnx" --data "$WORK/data" --out "$WORK/new-index" > /dev/null 2>&1
rc=0
(cd "$NEW" && "$PY" - "$WORK/old-index" "$WORK/new-index") <<'EOF' || rc=1
import sys
import numpy as np
from edge_asc.runtime.index import SegmentIndex
a, b = SegmentIndex.load(sys.argv[1]), SegmentIndex.load(sys.argv[2])
same = (
    np.array_equal(a.vectors(), b.vectors()) and np.array_equal(a.item_labels, b.item_labels)
    and list(a.scene_ids) == list(b.scene_ids) and list(a.recording_ids) == list(b.recording_ids)
    and np.array_equal(a.positions, b.positions)
)
sys.exit(0 if same else 1)
EOF
report "build-index from one ONNX file: vectors, labels, scenes, recordings, positions" $rc
exit $status
