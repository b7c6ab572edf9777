"""The dataset layouts on disk: which files a dataset lists, with their labels, recordings and official folds.

Three layouts are read (``layout="auto"`` picks one from the files present):

* ``folder``: one folder per class (``root/<label>/**/<file>``), optionally with ``root/metadata.csv``
  (comma separated, header ``path,label[,recording_id,...]``, paths relative to root; the layout of
  ambient13). Without a metadata file, or without its ``recording_id`` column, a file is its own recording.
* ``dcase2016``: the DCASE 2016/2017 development layout. ``meta.txt`` has tab-separated lines
  ``audio/a001_10_20.wav<TAB>label[<TAB>identifier...]``; ``evaluation_setup/foldN_train.txt`` and
  ``foldN_evaluate.txt`` (or ``foldN_test.txt``) give the official folds. The recording id is the
  identifier column when present, else the location prefix of the file name (``a001_10_20.wav`` -> ``a001``).
* ``dcase2018``: the DCASE 2018+ (TUT/TAU Urban Acoustic Scenes) development layout. ``meta.csv`` is tab
  separated with the header ``filename  scene_label  identifier  source_label``; the recording id is
  ``identifier`` (city-location); ``evaluation_setup/foldN_train.csv`` and ``foldN_evaluate.csv`` give folds.

``datasets.load_dataset`` turns the listed files into scenes. A file that cannot be read or lacks a column
is a ``DatasetError`` naming it.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")
FOLDER_METADATA = "metadata.csv"
DCASE2016_META = "meta.txt"
DCASE2018_META = "meta.csv"
SETUP_DIR = "evaluation_setup"
_SEGMENT_NAME = re.compile(r"^(?P<rec>.+?)_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)$")  # a001_10_20

FoldLists = dict[str, tuple[list[str], list[str]]]  # {fold name: (train files, test files)}, paths relative to the root


class DatasetError(ValueError):
    """A dataset that cannot be used (bad layout, missing column, nothing readable); names the file."""


def read_layout(root: Path, layout: str) -> tuple[list["Entry"], FoldLists]:
    """The files ``layout`` lists under ``root`` and its official folds (none for ``folder``)."""
    if layout == "folder":
        return folder_entries(root), {}
    if layout == "dcase2016":
        return dcase2016_entries(root), dcase_fold_lists(root, ".txt", header=False)
    return dcase2018_entries(root), dcase_fold_lists(root, ".csv", header=True)


def detect_layout(root: Path) -> str:
    """dcase2018 if meta.csv holds a filename/scene_label header, dcase2016 if meta.txt exists, else folder."""
    meta18 = root / DCASE2018_META
    if meta18.is_file():
        with open(meta18, newline="", encoding="utf-8") as f:
            header = f.readline().strip().split("\t")
        if "filename" in header and "scene_label" in header:
            return "dcase2018"
    if (root / DCASE2016_META).is_file():
        return "dcase2016"
    return "folder"


@dataclass(frozen=True)
class Entry:
    """One audio file a layout lists, with its label and recording."""

    path: Path
    rel: str  # path relative to the dataset root, with forward slashes
    label: str
    recording_id: str


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def rel_path(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_table(path: Path, delimiter: str, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a headed CSV/TSV file; a missing required column is an error naming the file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            columns = reader.fieldnames or []
            missing = [c for c in required if c not in columns]
            if missing:
                raise DatasetError(f"{path}: missing column {missing[0]!r} (columns found: {', '.join(columns) or 'none'})")
            rows = []
            for line_no, row in enumerate(reader, start=2):
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue
                empty = [c for c in required if not (row.get(c) or "").strip()]
                if empty:
                    raise DatasetError(f"{path}, line {line_no}: empty {empty[0]!r}")
                rows.append({k: (v or "").strip() for k, v in row.items() if isinstance(k, str) and isinstance(v, str)})
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc


def folder_entries(root: Path) -> list[Entry]:
    metadata = root / FOLDER_METADATA
    on_disk = sorted(p for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".") for p in d.rglob("*") if _is_audio(p))
    if not metadata.is_file():
        if not on_disk:
            raise DatasetError(f"{root}: no audio files in class folders ({', '.join(AUDIO_EXTENSIONS)})")
        return [Entry(p, rel_path(root, p), p.relative_to(root).parts[0], rel_path(root, p)) for p in on_disk]
    rows = _read_table(metadata, ",", ("path", "label"))
    entries, seen = [], set()
    for row in rows:
        rel = Path(row["path"].replace("\\", "/")).as_posix()
        if rel in seen:
            raise DatasetError(f"{metadata}: {rel} is listed twice")
        seen.add(rel)
        entries.append(Entry(root / rel, rel, row["label"], row.get("recording_id") or rel))
    unlisted = [p for p in on_disk if rel_path(root, p) not in seen]
    if unlisted:
        log.warning("%d audio files under %s are not in %s and are ignored (first: %s)", len(unlisted), root, metadata.name, unlisted[0])
    return entries


def recording_from_name(name: str) -> str:
    """DCASE 2016/2017 file names are <recording>_<start>_<end>.wav; the recording is the prefix."""
    stem = Path(name).stem
    match = _SEGMENT_NAME.match(stem)
    return match.group("rec") if match else stem


def dcase2016_entries(root: Path) -> list[Entry]:
    meta = root / DCASE2016_META
    entries = []
    for line_no, fields in _tab_lines(meta):
        if len(fields) < 2:
            raise DatasetError(f"{meta}, line {line_no}: expected <file><TAB><label>, got {fields[0]!r} alone")
        rel = fields[0].replace("\\", "/")
        recording = fields[2] if len(fields) > 2 and fields[2] else recording_from_name(rel)
        entries.append(Entry(root / rel, rel, fields[1], recording))
    if not entries:
        raise DatasetError(f"{meta}: lists no files")
    return entries


def _tab_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    for line_no, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            fields = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            yield line_no, [f.strip() for f in fields]


def dcase2018_entries(root: Path) -> list[Entry]:
    meta = root / DCASE2018_META
    rows = _read_table(meta, "\t", ("filename", "scene_label"))
    entries = []
    for row in rows:
        rel = row["filename"].replace("\\", "/")
        recording = row.get("identifier") or _recording_from_tau_name(rel)
        entries.append(Entry(root / rel, rel, row["scene_label"], recording))
    if not entries:
        raise DatasetError(f"{meta}: lists no files")
    return entries


def _recording_from_tau_name(rel: str) -> str:
    """airport-barcelona-0-0-a.wav -> barcelona-0 (city-location), as the identifier column."""
    parts = Path(rel).stem.split("-")
    return "-".join(parts[1:3]) if len(parts) >= 4 else Path(rel).stem


def dcase_fold_lists(root: Path, ext: str, header: bool) -> dict[str, tuple[list[str], list[str]]]:
    """{fold name: (train files, test files)} from evaluation_setup/foldN_train / foldN_evaluate (or _test)."""
    setup = root / SETUP_DIR
    folds: dict[str, tuple[list[str], list[str]]] = {}
    if not setup.is_dir():
        return folds
    for train_file in sorted(setup.glob(f"fold*_train{ext}"), key=lambda p: _fold_number(p.name)):
        name = train_file.name[: -len(f"_train{ext}")]
        test_file = next((f for f in (setup / f"{name}_evaluate{ext}", setup / f"{name}_test{ext}") if f.is_file()), None)
        if test_file is None:
            raise DatasetError(f"{train_file}: no matching {name}_evaluate{ext} or {name}_test{ext}")
        folds[name] = (_list_files(train_file, header), _list_files(test_file, header))
    return folds


def _fold_number(name: str) -> int:
    match = re.match(r"fold(\d+)_", name)
    return int(match.group(1)) if match else 0


def _list_files(path: Path, header: bool) -> list[str]:
    lines = list(_tab_lines(path))
    if header and lines and lines[0][1][0] == "filename":
        lines = lines[1:]
    return [fields[0].replace("\\", "/") for _, fields in lines]
