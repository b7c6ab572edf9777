"""``edge-asc classify`` on 30 minutes of audio as a whole process (start-up included): real-time factor.

    PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 python bench/bench_classify.py [--before TREE] [--runs 3]

Writes 30 minutes of ambient13 recordings (or, without them, generated noise) to a temporary 16 kHz WAV,
then runs ``python -m edge_asc classify FILE --json`` with the shipped model and index ``--runs`` times
from this tree, and from ``--before`` (another checkout, e.g. ``git worktree add /tmp/before <commit>``)
if given. For each: the best wall time, the CPU time (user + sys) of that run, both as real-time factors
(seconds per second of audio); and whether the decisions (label, votes, confidence, k,
segments, stream times: everything but the wall clock and the latency) are identical to the first
tree's. Modules are byte-compiled once (a first run, not counted), as in an installation. On a shared machine the wall time includes other processes' load; the CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
AMBIENT13 = next((p for p in (REPO.parent / "shared" / "data" / "ambient13", Path("/work/shared/data/ambient13")) if p.is_dir()), None)
PYCACHE = Path(tempfile.gettempdir()) / "bench_classify_pycache"  # outside the trees
SECONDS = 1800
RATE = 16000


def make_audio(path: Path) -> str:
    import soundfile as sf

    if AMBIENT13 is None:
        rng = np.random.default_rng(0)
        sf.write(str(path), (rng.standard_normal(SECONDS * RATE) * 0.05).astype(np.float32), RATE, subtype="PCM_16")
        return "generated noise"
    parts, n = [], 0
    files = sorted(AMBIENT13.rglob("*.flac"))
    for f in files[::2] + files[1::2]:  # places interleaved
        a, sr = sf.read(str(f), dtype="float32", always_2d=True)
        assert sr == RATE, f
        parts.append(a.mean(axis=1))
        n += len(a)
        if n >= SECONDS * RATE:
            break
    sf.write(str(path), np.concatenate(parts)[: SECONDS * RATE], RATE, subtype="PCM_16")
    return f"ambient13, {len(parts)} recordings"


def run_once(tree: Path, audio: Path, model: Path, index: Path) -> tuple[float, float, list[tuple]]:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", PYTHONPYCACHEPREFIX=str(PYCACHE / tree.name))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: compiled modules are cached (the first run writes them)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edge_asc", "classify", str(audio), "--json", "--model", str(model), "--index", str(index)],
                       env=env, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{tree}: classify failed: {r.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    keep = ("label", "votes", "confidence", "k", "mode", "stream_start_s", "stream_end_s", "segment_index")
    decisions = [tuple(json.dumps(e[key], sort_keys=True) for key in keep) for e in map(json.loads, r.stdout.splitlines())]
    return wall, cpu, decisions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, help="another checkout to compare with (its edge_asc runs the same command)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model = sorted((REPO / "models").glob("*.onnx"))[0]
    index = REPO / "index" / model.stem
    trees = [("this tree", REPO)] + ([("before", args.before.resolve())] if args.before else [])
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "thirty-minutes.wav"
        source = make_audio(audio)
        print(f"{SECONDS} s of audio ({source}); model {model.name}; {args.runs} runs each, best wall time shown")
        print(f"{'tree':<10} {'wall s':>7} {'CPU s':>6} {'RTF wall':>9} {'RTF CPU':>8} {'decisions':>9}  identical to this tree's")
        reference = None
        for name, tree in trees:
            runs = [run_once(tree, audio, model, index) for _ in range(args.runs + 1)][1:]  # the first compiles the modules
            wall, cpu, decisions = min(runs, key=lambda r: r[0])
            reference = decisions if reference is None else reference
            same = "yes" if decisions == reference else f"no: {sum(a != b for a, b in zip(decisions, reference)) + abs(len(decisions) - len(reference))} differ"
            print(f"{name:<10} {wall:>7.2f} {cpu:>6.2f} {wall / SECONDS:>9.5f} {cpu / SECONDS:>8.5f} {len(decisions):>9}  {same}")


if __name__ == "__main__":
    main()
