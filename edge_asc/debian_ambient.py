"""debian-ambient: a training dataset of free-licensed ambience recordings that Debian's archive ships inside
game and desktop data packages, rebuilt on any Debian 12 machine by ``edge-asc data debian --out DIR``.

``edge_asc/data/debian_ambient.csv`` lists each file (written by scripts/make-debian-ambient-list.py from
../shared/data/debian-ambient/manifest.csv, whose README has the independence scores): output name, package,
version, path in the package, sha256, .deb size, ambient13 label, seconds, licence, origin, recording group.
No audio is stored: the packages are fetched by edge_asc.archive (``apt-get download``, never installed;
the .debs are kept in ``$XDG_CACHE_HOME/edge-asc/debs``, the listed files in ``.../edge-asc/debian-ambient``).

Left out of the list, and why:

- rows labelled ``other:<name>`` (not an ambient13 class);
- rows whose ``copy_of`` is set: flare-game ``open_fire.ogg`` copies ambient13 campfire/blanket__fireplace,
  megaglest-data ``dark_forest/sounds/night.ogg`` scores as a copy of boat/moodist__rowing-boat;
- redeclipse-data ``morph/stormbolts.ogg``: copies held-out audio;
- the demo's files (every path of edge_asc/data/demo_sources.csv: minetest-data's fire and water, pomodoro
  birds, btanks city) and every row sharing a recording group with one of them (ardentryst ``fire_loop.ogg`` =
  minetest ``fire_small.ogg``), so that the demo stays audio the model never heard;
- megaglest-data ``winter_forest/sounds/wind.ogg``: the same audio as ``winter/sounds/wind.ogg`` (kept once).

Output: ambient13's layout, read by ``edge-asc train --data DIR`` as it reads ambient13: ``<label>/<name>.flac``
(16 kHz mono, FLAC PCM_16: the channel mean, resampled by edge_asc.dsp) and ``metadata.csv`` with ambient13's
columns ``path,label,recording_id,duration_s,source,origin_path,license`` (recording_id = ``debian:`` + the
recording group, so that files cut from one recording group together and ids never meet another source's;
source = ``<package>=<version>``; origin_path = the path in the package) and four more: origin (the
recording's origin as the package states it), origin_sha256 (of the file in the package), sha256 (of the
FLAC) and gain_db: a decoded file whose peak exceeds full scale (Vorbis decodes to floats; supertuxkart's
lenautile_restaurant peaks at 5.7, 1.7% of its samples over 1) is scaled down to fit 16 bits, not clipped. The folder is built in ``.<name>.partial`` beside it and replaces it in one step when complete; a
killed build, run again, keeps every finished file whose sha256 matches and fetches only what is missing.

Torch-free: numpy, soundfile and the standard library.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

from edge_asc import archive
from edge_asc.dsp.audio_io import read_audio
from edge_asc.dsp.features import SAMPLE_RATE
from edge_asc.fsutil import atomic_write_dir, atomic_write_file, atomic_write_text
from edge_asc.training.layouts import FOLDER_METADATA

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).resolve().parent / "data" / "debian_ambient.csv"
SUBTYPE = "PCM_16"
FULL_SCALE = 32767 / 32768  # the largest PCM_16 sample
RECORDING_PREFIX = "debian:"
METADATA = FOLDER_METADATA  # the folder layout's metadata file, as edge-asc train reads it
PROGRESS_FILE = ".built.csv"  # in the partial folder: the files finished so far, as metadata rows
CACHE_NAME = "debian-ambient"  # the listed files' cache, under the cache root
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BuildError(Exception):
    """The dataset cannot be built (a bad list, an output folder that is something else); one line."""


@dataclass(frozen=True)
class DebianFile:
    """One row of the list: a file in a package and what it becomes."""

    name: str
    package: str
    version: str
    path: str
    sha256: str
    deb_size: int
    label: str
    seconds: float
    licence: str
    origin: str
    recording_group: str

    @property
    def rel(self) -> str:
        return f"{self.label}/{self.name}.flac"

    @property
    def recording_id(self) -> str:
        return RECORDING_PREFIX + self.recording_group

    @property
    def source(self) -> str:
        return f"{self.package}={self.version}"


@dataclass(frozen=True)
class Built:
    """One row of metadata.csv: a finished file."""

    path: str
    label: str
    recording_id: str
    duration_s: str
    source: str
    origin_path: str
    license: str
    origin: str
    origin_sha256: str
    sha256: str
    gain_db: str  # applied to a file whose decoded peak exceeds full scale (else 0.00)


COLUMNS = tuple(f.name for f in fields(Built))


@dataclass
class Report:
    """What a build did."""

    out: Path
    files: list[Built] = field(default_factory=list)
    reused: int = 0
    downloads: tuple[tuple[str, int], ...] = ()
    seconds: float = 0.0  # wall-clock time of the build
    up_to_date: bool = False

    def minutes_per_label(self) -> dict[str, float]:
        per: dict[str, float] = {}
        for b in self.files:
            per[b.label] = per.get(b.label, 0.0) + float(b.duration_s) / 60.0
        return dict(sorted(per.items()))

    def recordings(self) -> int:
        return len({b.recording_id for b in self.files})


def load_manifest(path: Path = MANIFEST) -> list[DebianFile]:
    """The list's rows, checked: every column, unique names, a sha256 and a size per file."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BuildError(f"{path}: cannot read ({exc})") from None
    names = [f.name for f in fields(DebianFile)]
    if not rows:
        raise BuildError(f"{path}: lists no files")
    missing = [c for c in names if c not in rows[0]]
    if missing:
        raise BuildError(f"{path}: missing column {missing[0]!r}")
    files, seen = [], set()
    for line, r in enumerate(rows, start=2):
        try:
            f = DebianFile(**{**{c: r[c].strip() for c in names}, "deb_size": int(r["deb_size"]), "seconds": float(r["seconds"]),
                              "sha256": r["sha256"].strip().lower()})  # fmt: skip
        except (ValueError, TypeError, AttributeError) as exc:
            raise BuildError(f"{path}, line {line}: {exc}") from None
        if not _NAME.match(f.name) or not _NAME.match(f.label) or not _SHA256.match(f.sha256) or not f.path.startswith("/"):
            raise BuildError(f"{path}, line {line}: a name, label, absolute path and 64-digit sha256 are needed")
        if f.rel in seen:
            raise BuildError(f"{path}, line {line}: {f.rel} is listed twice")
        seen.add(f.rel)
        files.append(f)
    return files


def partial_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def build(files: list[DebianFile], out: Path, cache_root: Path | None = None, say: Callable[[str], None] = log.info) -> Report:
    """Write the dataset of ``files`` to ``out`` (see the module's docstring); the .debs go to
    ``<cache_root>/debs``, the listed files to ``<cache_root>/debian-ambient`` (default: ~/.cache/edge-asc)."""
    started = time.monotonic()
    out = Path(out)
    finished = _finished_in(out)
    report = Report(out)
    if finished is not None and _reusable(out, files, finished) == len(files) == len(finished):
        report.files, report.reused, report.up_to_date = [finished[f.rel] for f in files], len(files), True
        report.seconds = time.monotonic() - started
        return report
    work = partial_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    done = _adopt(work, out, files, finished or {})
    report.reused = len(done)
    todo = [f for f in files if f.rel not in done]
    if todo:
        root = cache_root or archive.cache_root()
        fetched = archive.fetch(todo, root / CACHE_NAME, debs=root / "debs", say=say)
        report.downloads = fetched.downloads
        for n, f in enumerate(todo, start=1):
            done[f.rel] = _decode(f, fetched.paths[f], work)
            _write_rows(work / PROGRESS_FILE, done.values())
            say(f"decoded [{n}/{len(todo)}] {f.rel} ({float(done[f.rel].duration_s):.1f} s)")
    report.files = [done[f.rel] for f in files]
    _write_rows(work / METADATA, sorted(report.files, key=lambda b: b.path))
    (work / PROGRESS_FILE).unlink()
    atomic_write_dir(out, lambda tmp: _link_tree(work, tmp))
    shutil.rmtree(work)
    report.seconds = time.monotonic() - started
    return report


def _finished_in(out: Path) -> dict[str, Built] | None:
    """The files an earlier build wrote to ``out`` (None: no folder); a folder that is something else is refused."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise BuildError(f"{out} exists and is not a folder")
    if not (out / METADATA).is_file():
        if any(out.iterdir()):
            raise BuildError(f"{out} holds files but no {METADATA}: not a dataset this command wrote; give a new or empty folder")
        return None
    rows = _read_rows(out / METADATA)
    if rows is None:
        raise BuildError(f"{out / METADATA} was not written by edge-asc data debian (its columns differ); give a new folder")
    return rows


def _read_rows(path: Path) -> dict[str, Built] | None:
    """metadata rows by path; None when the file lacks the builder's columns."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            return None
        return {r["path"]: Built(**r) for r in reader}


def _write_rows(path: Path, rows) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([getattr(b, c) for c in COLUMNS] for b in rows)
    atomic_write_text(path, buf.getvalue())


def _is_kept(folder: Path, f: DebianFile, built: Built | None) -> bool:
    """``built`` is ``f``'s output, made from the listed file, and the file in ``folder`` is still that output."""
    if built is None or built.origin_sha256 != f.sha256 or built.label != f.label or built.recording_id != f.recording_id:
        return False
    path = folder / f.rel
    return path.is_file() and archive.sha256_of(path) == built.sha256


def _reusable(out: Path, files: list[DebianFile], finished: dict[str, Built]) -> int:
    return sum(_is_kept(out, f, finished.get(f.rel)) for f in files)


def _adopt(work: Path, out: Path, files: list[DebianFile], finished: dict[str, Built]) -> dict[str, Built]:
    """The files already done: in the partial folder (an interrupted build) or in ``out`` (an earlier build),
    linked into the partial folder; anything else there is removed."""
    progress = _read_rows(work / PROGRESS_FILE) or {}
    done = {}
    for f in files:
        if _is_kept(work, f, progress.get(f.rel)):
            done[f.rel] = progress[f.rel]
        elif _is_kept(out, f, finished.get(f.rel)):
            (work / f.rel).parent.mkdir(parents=True, exist_ok=True)
            (work / f.rel).unlink(missing_ok=True)
            _link(out / f.rel, work / f.rel)
            done[f.rel] = finished[f.rel]
    for path in sorted(work.rglob("*"), reverse=True):  # leftovers of another list or of a killed write
        if path.is_file() and path.relative_to(work).as_posix() not in done and path.name != PROGRESS_FILE:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if done:
        log.info("keeping %d finished files of an earlier build", len(done))
    return done


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or no hard links
        shutil.copyfile(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            _link(path, target)


def _decode(f: DebianFile, source: Path, work: Path) -> Built:
    """``source`` (ogg or wav) as 16 kHz mono FLAC PCM_16 at ``work/<label>/<name>.flac``."""
    import soundfile

    audio = read_audio(source, SAMPLE_RATE)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    gain = min(1.0, FULL_SCALE / peak) if peak > 0 else 1.0  # a decoded Vorbis file may exceed full scale
    if gain < 1.0:
        log.info("%s: peak %.2f (%.1f dB over full scale) after decoding; scaled down to fit 16 bits", f.rel, peak, -20 * np.log10(gain))
    target = work / f.rel
    pcm = np.clip(audio * np.float32(gain), -1.0, FULL_SCALE)
    atomic_write_file(target, lambda tmp: soundfile.write(str(tmp), pcm, SAMPLE_RATE, subtype=SUBTYPE, format="FLAC"))
    duration = audio.shape[0] / SAMPLE_RATE
    if abs(duration - f.seconds) > 0.05:
        log.warning("%s: %.2f s, the list says %.2f s", f.rel, duration, f.seconds)
    return Built(f.rel, f.label, f.recording_id, f"{duration:.2f}", f.source, f.path, f.licence, f.origin, f.sha256,
                 archive.sha256_of(target), f"{20 * np.log10(gain):.2f}")  # fmt: skip


def summary(report: Report) -> list[str]:
    """The lines the command prints at the end: files, recordings, minutes per class, download, time."""
    total = sum(report.minutes_per_label().values())
    mb = sum(size for _, size in report.downloads) / 1e6
    lines = [
        f"{report.out}: {len(report.files)} files, {report.recordings()} recordings (recording groups), {total:.1f} minutes, "
        + ("already up to date" if report.up_to_date else f"{report.reused} kept from an earlier build"),
        f"downloaded {mb:.1f} MB in {len(report.downloads)} packages; built in {report.seconds:.1f} s",
    ]
    for label, minutes in report.minutes_per_label().items():
        files = [b for b in report.files if b.label == label]
        lines.append(f"  {label:<16} {len(files):3d} files {len({b.recording_id for b in files}):3d} recordings {minutes:6.2f} min")
    return lines

