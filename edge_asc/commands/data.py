"""``edge-asc data debian --out DIR``: build the debian-ambient training dataset from Debian's archive.

The files, their licences and what was left out and why: edge_asc.debian_ambient. Downloads about 2.3 GB
of packages with ``apt-get download`` (nothing is installed), kept in ``~/.cache/edge-asc/debs`` so that a
second build downloads nothing. Torch-free: runs on a fresh Debian 12 with the device install.

Exit status: 0 built (or already up to date), 2 a list or output folder it cannot use, 3 the archive cannot
give the files (no apt-get, no network, a sha256 that no longer matches), as ``edge-asc demo``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge_asc import archive, debian_ambient

HELP = "build a training dataset: debian-ambient, recorded ambiences from Debian's archive (apt-get download)"

DEBIAN_HELP = ("debian-ambient: 54 recorded ambience loops (27 min, 10 classes) from Debian 12 game data packages; "
               "downloads about 2.3 GB with apt-get download (nothing installed), writes ambient13's layout")  # fmt: skip

log = logging.getLogger(__name__)

NO_APT_HINT = ("edge-asc data debian needs a Debian or Ubuntu system with apt-get and dpkg-deb; elsewhere build it "
               "on one (a container of debian:12 will do) and copy the folder over")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET")
    sub.required = True
    p = sub.add_parser("debian", help=DEBIAN_HELP, description=DEBIAN_HELP, formatter_class=parser.formatter_class)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the dataset folder to write (class folders + metadata.csv)")
    p.add_argument("--manifest", type=Path, metavar="CSV", default=debian_ambient.MANIFEST,
                   help="the list of files to build (default: the committed edge_asc/data/debian_ambient.csv)")  # fmt: skip
    p.add_argument("--cache-dir", type=Path, metavar="DIR", default=None,
                   help="where downloaded packages (debs/) and the listed files are kept (default: $XDG_CACHE_HOME/edge-asc, ~/.cache/edge-asc)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        files = debian_ambient.load_manifest(args.manifest)
        report = debian_ambient.build(files, args.out, args.cache_dir)
    except debian_ambient.BuildError as exc:
        log.error("%s", exc)
        return 2
    except archive.ChecksumMismatch as exc:
        log.error("sha256 mismatch: %s (the archive changed; the list needs updating)", exc)
        return 3
    except archive.ArchiveUnavailable as exc:
        hint = f"; {NO_APT_HINT}" if "is not available" in str(exc) else ""
        log.error("cannot fetch from Debian's archive: %s%s", exc, hint)
        return 3
    for line in debian_ambient.summary(report):
        print(line)
    return 0
