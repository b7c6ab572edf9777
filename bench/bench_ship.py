"""Issue 5 figures: cold start of `edge-asc demo` to its first event, and the size of the shipped files.

    python bench/bench_ship.py [--runs 5] [--json PATH]

Cold start: wall time from launching the `edge-asc demo` process to the moment its first scene event
line appears on its stdout (the event has crossed the daemon's socket to the demo's subscriber), in
real-time mode (the first decision needs k x 300 ms of audio) and with --fast.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from edge_asc.paths import default_index_path, default_model_path


def first_event_seconds(extra: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_asc", "--log-level", "WARNING", "demo", "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if not line.startswith("#"):
                return time.monotonic() - t0
        raise RuntimeError(f"the demo printed no event (exit {proc.wait()})")
    finally:
        proc.kill()
        proc.wait()


def sizes() -> dict[str, int]:
    files = [default_model_path(), *sorted(p for p in default_index_path().iterdir() if p.is_file())]
    return {str(p): p.stat().st_size for p in files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result = {"sizes_bytes": sizes()}
    result["total_mb"] = sum(result["sizes_bytes"].values()) / 1e6
    for name, extra in (("realtime", []), ("fast", ["--fast"])):
        times = [first_event_seconds(extra) for _ in range(args.runs)]
        result[f"first_event_s_{name}"] = {"median": statistics.median(times), "max": max(times), "runs": times}
    for path, size in result["sizes_bytes"].items():
        print(f"{size / 1e6:8.2f} MB  {path}")
    print(f"{result['total_mb']:8.2f} MB  total")
    for name in ("realtime", "fast"):
        r = result[f"first_event_s_{name}"]
        print(f"demo cold start to first event ({name}): median {r['median']:.2f} s, max {r['max']:.2f} s over {args.runs} runs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
