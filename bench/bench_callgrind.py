"""Instructions per 300 ms segment (valgrind's callgrind): a cost figure that a loaded machine does not move.

    PYTHONPATH=. nice -n 10 python bench/bench_callgrind.py [--segments 100] [--stages features,encoder,...]

Each stage runs in its own process under ``valgrind --tool=callgrind``; every process does the same set-up
(imports, the shipped encoder and index loaded, seeded audio at 16, 44.1 and 48 kHz, the inputs of each
stage prepared) and then ``--segments`` repetitions of one stage; a process that does none is the
baseline, so (instructions of the stage's process - baseline) / segments is the stage's cost per segment:

- ``features``: FeatureExtractor.segment_features of one segment (the daemon's call);
- ``encoder``: Encoder.embed of one segment's features (batch of one, runs as two: BATCH_INVARIANCE);
- ``search``: the index query of one embedding (k = 1, the shipped index at its manifest's ef);
- ``live16``, ``live44``, ``live48``: the daemon's whole path after the ring, per segment: 512-frame
  blocks at that device rate through the Conditioner (resampling) and Pipeline.push (features, encoder,
  search, decision);
- ``bulk``: the offline classify path per segment (Pipeline.push_bulk, 64 segments per run).

Python's hash seed is fixed and the libraries use one thread. Two runs here (20 and 100 segments) gave
the same encoder, search and live figures within 1-3%, but one process in each run (a baseline, once the
features stage) counted about 0.23 G instructions more than its twin, once: so the baseline runs twice and
its repeat is printed as the noise floor, and a figure is to be trusted when it is far above floor /
segments (use 100 segments or more). The Raspberry Pi 4 estimate: a Cortex-A72 core at 1.5 GHz retires about 1 to 1.5
instructions per cycle on this kind of code (NumPy/BLAS loops, ONNX kernels; x86 counts stand in for
AArch64 ones, which are within ~20% for such code), so a segment costs instructions / (1.5e9 x IPC):
the range printed uses IPC 1.0 (slow) to 1.5 (fast), against 300 ms of audio per segment.

valgrind (3.19) cannot run AVX-512 code, and hnswlib built from source with its default -march=native uses
it unconditionally (libraries that pick their kernels at run time, NumPy and onnxruntime, see valgrind's
CPU and take AVX2 ones). Build one without, outside the tree, and put it first on the path:
    HNSWLIB_NO_NATIVE=1 pip install --no-deps --no-binary hnswlib --target /tmp/hnsw-portable hnswlib
    python bench/bench_callgrind.py --pythonpath /tmp/hnsw-portable
(a Pi's hnswlib has no x86 SIMD either.)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("features", "encoder", "search", "live16", "live44", "live48", "bulk")
PI4_HZ = 1.5e9
PI4_IPC = (1.0, 1.5)
SEGMENT_S = 0.3


def driver(stage: str, n: int) -> None:
    """The process valgrind measures: set-up, then ``n`` segments of ``stage`` (none: the baseline)."""
    import numpy as np

    from edge_asc.dsp.condition import Conditioner
    from edge_asc.runtime.decision import DecisionPolicy
    from edge_asc.runtime.pipeline import Pipeline, load_artifacts

    model = sorted((REPO / "models").glob("*.onnx"))[0]
    encoder, index = load_artifacts(model, REPO / "index" / model.stem)
    cfg = encoder.meta.feature_config
    rng = np.random.default_rng(0)
    seg = cfg.segment_samples
    audio = {rate: (rng.standard_normal(int((n + 2) * SEGMENT_S * rate) + 1024) * 0.1).astype(np.float32) for rate in (16000, 44100, 48000)}
    x = audio[16000][: cfg.input_samples]
    pipe = Pipeline(encoder, index, DecisionPolicy(len(index.labels)))
    feats = pipe.extractor.segment_features(x)[None]
    emb = encoder.embed(feats)
    index.query(emb, 1)
    if stage == "features":
        for _ in range(n):
            pipe.extractor.segment_features(x)
    elif stage == "encoder":
        for _ in range(n):
            encoder.embed(feats)
    elif stage == "search":
        for _ in range(n):
            index.query(emb, 1)
    elif stage.startswith("live"):
        rate = {"live16": 16000, "live44": 44100, "live48": 48000}[stage]
        cond, done, pos = Conditioner(rate, cfg.sample_rate), 0, 0
        while done < n:
            for _ in pipe.push(cond.process(audio[rate][pos : pos + 512])):
                done += 1
            pos += 512
    elif stage == "bulk":
        sum(1 for _ in pipe.push_bulk(audio[16000][: n * seg]))
    elif stage != "baseline":
        raise SystemExit(f"unknown stage {stage}")


def instructions(stage: str, n: int, pythonpath: str | None) -> int:
    path = os.pathsep.join(p for p in (pythonpath, str(REPO)) if p)
    env = dict(os.environ, PYTHONPATH=path, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", sys.executable, __file__,
                            "--driver", stage, "--segments", str(n)], env=env, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not found:
        raise SystemExit(f"callgrind {stage}: failed\n{r.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=100)
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--pythonpath", help="put this first on the path (an hnswlib built without -march=native, see above)")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind processes at a time")
    ap.add_argument("--driver", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.driver:
        return driver(args.driver, args.segments)
    t = time.monotonic()
    stages = args.stages.split(",")
    with ThreadPoolExecutor(args.jobs) as pool:  # each process is counted alone; running several only saves time
        counts = list(pool.map(lambda st: instructions(st, args.segments, args.pythonpath), ["baseline", "baseline", *stages]))
    base, again = counts[0], counts[1]
    counts = counts[1:]  # the repeated baseline, then the stages
    stages = ["baseline", *stages]  # the repeat, as a stage: the noise floor per segment
    print(f"baseline (set-up, imports, artifacts): {base / 1e9:.3f} G instructions; {args.segments} segments per stage")
    print(f"baseline repeated: {again - base:+,} instructions ({(again - base) / args.segments:+,.0f} per segment): the noise floor")
    lo_ms, hi_ms = (1e3 / (PI4_HZ * ipc) for ipc in PI4_IPC)
    print(f"{'stage':<9} {'instr/segment':>14} {'Pi 4 core ms/segment':>21} {'% of a Pi 4 core':>17}")
    for stage, count in zip(stages, counts):
        per = (count - base) / args.segments
        fast, slow = per * hi_ms, per * lo_ms
        print(f"{stage:<9} {per:>14,.0f} {fast:>9.2f} - {slow:<9.2f} {100 * fast / 1e3 / SEGMENT_S:>7.1f} - {100 * slow / 1e3 / SEGMENT_S:<7.1f}", flush=True)
    print(f"({time.monotonic() - t:.0f} s under valgrind)")


if __name__ == "__main__":
    main()
