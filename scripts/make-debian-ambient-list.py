#!/usr/bin/env python3
"""Write edge_asc/data/debian_ambient.csv, the rows of ../shared/data/debian-ambient/manifest.csv that
``edge-asc data debian`` builds (usage: make-debian-ambient-list.py [MANIFEST]; rerun when it changes).

Kept: rows labelled with an ambient13 class. Dropped, each for a reason (edge_asc/debian_ambient.py lists
them too): rows with ``copy_of`` set (copies of ambient13 or held-out audio), redeclipse stormbolts (held-out
audio), the demo's files (edge_asc/data/demo_sources.csv) and every row sharing a recording group with one
of them, and the second of two identical files (same_audio group whose audio is identical: w4 0.999).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO.parent / "shared" / "data" / "debian-ambient" / "manifest.csv"
OUT = REPO / "edge_asc" / "data" / "debian_ambient.csv"
DEMO = REPO / "edge_asc" / "data" / "demo_sources.csv"
LABELS = ("airplane_cabin", "boat", "cafe_restaurant", "campfire", "forest_birds", "night_crickets", "office", "rain",
          "river_stream", "seaside", "street_traffic", "train", "wind")  # fmt: skip
HELD_OUT_COPIES = {"/usr/share/games/redeclipse/data/sounds/ambience/morph/stormbolts.ogg"}
IDENTICAL_DUPLICATES = {"/usr/share/games/megaglest/tilesets/winter_forest/sounds/wind.ogg"}  # = winter/sounds/wind.ogg
GENERIC_DIRS = {"usr", "share", "games", "data", "sounds", "sound", "soundfx", "sfx", "wav", "misc", "ambient", "ambience",
                "environment", "core", "mods", "tilesets", "globalmods", "music", "Sounds", "none"}  # fmt: skip
COLUMNS = ("name", "package", "version", "path", "sha256", "deb_size", "label", "seconds", "licence", "origin", "recording_group")


def file_name(row: dict, rows: list[dict]) -> str:
    """<package stem>__<the shortest distinctive tail of the path>: megaglest__autumn-rain, redeclipse__forest1."""
    def parts(r):
        p = Path(r["path_in_package"])
        dirs = [d for d in p.parent.parts[1:] if d not in GENERIC_DIRS and d not in r["package"] and not d[0].isdigit()]
        return dirs, p.stem
    dirs, stem = parts(row)
    siblings = [r for r in rows if r is not row and r["package"] == row["package"]]
    for n in range(len(dirs) + 1):
        tail = "-".join(dirs[len(dirs) - n:] + [stem])
        if all("-".join(parts(r)[0][len(parts(r)[0]) - n:] + [parts(r)[1]]) != tail for r in siblings):
            break
    package = row["package"].removesuffix("-data").removesuffix("-game").split("-1.")[0]
    return f"{package}__{tail}".replace(" ", "_")


def main() -> int:
    manifest = Path(sys.argv[1]) if len(sys.argv) > 1 else MANIFEST
    rows = list(csv.DictReader(manifest.open(encoding="utf-8", newline="")))
    demo_paths = {r["path"] for r in csv.DictReader(DEMO.open(encoding="utf-8", newline=""))}
    demo_groups = {r["recording_group"] for r in rows if r["path_in_package"] in demo_paths}
    kept = [r for r in rows if r["label"] in LABELS and not r["copy_of"].strip() and r["path_in_package"] not in HELD_OUT_COPIES
            and r["path_in_package"] not in IDENTICAL_DUPLICATES and r["path_in_package"] not in demo_paths
            and r["recording_group"] not in demo_groups]  # fmt: skip
    with OUT.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(COLUMNS)
        for r in sorted(kept, key=lambda r: (r["label"], r["package"], r["path_in_package"])):
            out.writerow([file_name(r, kept), r["package"], r["version"], r["path_in_package"], r["sha256_of_file_in_package"],
                          r["deb_size_bytes"], r["label"], r["duration_s"], r["licence"], r["original_source"], r["recording_group"]])  # fmt: skip
    print(f"{OUT}: {len(kept)} of {len(rows)} rows ({len({r['recording_group'] for r in kept})} recording groups)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
