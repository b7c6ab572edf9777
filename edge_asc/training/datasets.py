"""Labelled recordings on disk -> scenes -> 300 ms segments.

The layouts read (``folder``, ``dcase2016``, ``dcase2018``; ``layout="auto"`` picks one from the files present)
are described in training/layouts.py; the train/test splits are in training/splits.py.

A file is cut into scenes of ``chunk_seconds`` (10 s by default); a last chunk shorter than one segment is
dropped. Each scene is its own stream (zeros before its first sample), so a scene is featurised exactly as
the daemon featurises a file handed to it. Unreadable files are reported by name, skipped and counted.

Only numpy, the standard library and edge_asc's own numpy modules are imported here (runtime-safe).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from edge_asc.dsp.audio_io import AudioFileError, audio_info, read_audio
from edge_asc.dsp.features import SAMPLE_RATE, FeatureConfig, FeatureExtractor
from edge_asc.training.layouts import DatasetError, Entry, FoldLists, detect_layout, read_layout, recording_from_name, rel_path

__all__ = [  # recording_from_name and DatasetError live in layouts.py; they are part of this module's interface
    "CHUNK_SECONDS", "LAYOUTS", "DatasetError", "SceneFile", "Fold", "Dataset", "SegmentSet", "load_dataset", "detect_layout",
    "chunk_bounds", "recording_from_name", "iter_scene_audio", "load_scene_audio", "extract_segments",
    "recordings_on_both_sides",
]

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "folder", "dcase2016", "dcase2018")
CHUNK_SECONDS = 10.0


# --- records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SceneFile:
    """One labelled stream: a whole file or one fixed-length chunk of it."""

    path: Path  # absolute path of the audio file
    label: str
    scene_id: str  # file path relative to the root, plus "#k" for chunk k of a chunked file
    recording_id: str  # scenes of one recording never sit on both sides of a split
    start_s: float  # offset of the chunk in the file (seconds)
    duration_s: float  # chunk length (seconds, at the model's sample rate)
    source: int = 0  # index into Dataset.sources: which of the combined datasets the scene comes from

    def cut(self, sample_rate: int) -> tuple[int, int]:
        """The scene's [start, stop) in samples of the file read at ``sample_rate`` (stop may pass the end by rounding)."""
        start = int(round(self.start_s * sample_rate))
        return start, start + int(round(self.duration_s * sample_rate))


@dataclass(eq=False)
class Fold:
    """One train/test split of a dataset's scenes (indices into ``Dataset.scenes``)."""

    name: str
    train: np.ndarray  # (n_train,) int64 scene indices
    test: np.ndarray  # (n_test,) int64 scene indices
    leaky: bool = False  # True when recordings may sit on both sides (the paper's random scene split)


@dataclass(eq=False)
class Dataset:
    root: Path
    layout: str
    labels: tuple[str, ...]  # sorted; a label's index is its class id
    scenes: list[SceneFile]
    folds: list[Fold] | None = None  # official folds (DCASE layouts), None otherwise
    sample_rate: int = SAMPLE_RATE
    chunk_seconds: float | None = CHUNK_SECONDS
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason) for every unusable file
    sources: tuple[str, ...] = ()  # names of the datasets combined by combine.load_datasets (one per root); () = one
    roots: tuple[Path, ...] = ()  # their folders (combine.load_datasets); () = just ``root``

    @property
    def source_names(self) -> tuple[str, ...]:
        """The name of every source (``SceneFile.source`` indexes into it): the folder name for one dataset."""
        return self.sources or (Path(self.root).name,)

    def scene_sources(self) -> np.ndarray:
        """(n_scenes,) int64 index into ``source_names`` of every scene."""
        return np.array([s.source for s in self.scenes], dtype=np.int64)

    @property
    def recording_ids(self) -> tuple[str, ...]:
        """Sorted unique recording ids; ``SegmentSet.recording`` indexes into this."""
        return tuple(sorted({s.recording_id for s in self.scenes}))

    def scene_labels(self) -> np.ndarray:
        """(n_scenes,) int64 class id of every scene."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[s.label] for s in self.scenes], dtype=np.int64)

    def scene_recordings(self) -> np.ndarray:
        """(n_scenes,) int64 index into ``recording_ids`` of every scene."""
        index = {rec: i for i, rec in enumerate(self.recording_ids)}
        return np.array([index[s.recording_id] for s in self.scenes], dtype=np.int64)

    def summary(self) -> str:
        minutes = sum(s.duration_s for s in self.scenes) / 60.0
        files = len({s.path for s in self.scenes})
        where = " + ".join(str(r) for r in self.roots) if self.roots else str(self.root)
        return (
            f"{where} ({self.layout}): {files} files, {len(self.scenes)} scenes ({minutes:.1f} min), "
            f"{len(self.labels)} classes, {len(self.recording_ids)} recordings, {len(self.skipped)} files skipped"
        )


@dataclass(eq=False)
class SegmentSet:
    """Features of every 300 ms segment of some scenes, with what each segment belongs to."""

    features: np.ndarray  # (N, frames_per_segment, n_features) float32
    labels: np.ndarray  # (N,) int64 class id (index into label_names)
    scene: np.ndarray  # (N,) int64 index into Dataset.scenes
    recording: np.ndarray  # (N,) int64 index into recording_ids
    position: np.ndarray  # (N,) int64 segment index within its scene (0 = first 300 ms)
    label_names: tuple[str, ...] = ()
    recording_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, rows: np.ndarray) -> "SegmentSet":
        """The segments at ``rows`` (a boolean mask or integer indices)."""
        return SegmentSet(
            self.features[rows],
            self.labels[rows],
            self.scene[rows],
            self.recording[rows],
            self.position[rows],
            self.label_names,
            self.recording_ids,
        )

    def of_scenes(self, scene_indices: Iterable[int]) -> "SegmentSet":
        """The segments of the given scenes (e.g. ``fold.train``)."""
        return self.select(np.isin(self.scene, np.asarray(list(scene_indices), dtype=np.int64)))


# --- loading ------------------------------------------------------------------------------------


def load_dataset(
    root: str | Path,
    layout: str = "auto",
    chunk_seconds: float | None = CHUNK_SECONDS,
    sample_rate: int = SAMPLE_RATE,
    segment_seconds: float | None = None,
) -> Dataset:
    """Read a dataset's file list and labels, cut files into scenes, and attach official folds.

    ``chunk_seconds`` None keeps each file whole. ``segment_seconds`` (default: the feature
    segment, 0.3 s) is the shortest chunk kept. Audio is not decoded here, only file headers.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown dataset layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    if layout == "auto":
        layout = detect_layout(root)
    segment_seconds = FeatureConfig(sample_rate=sample_rate).segment_seconds if segment_seconds is None else segment_seconds
    if chunk_seconds is not None and chunk_seconds < segment_seconds:
        raise DatasetError(f"chunk_seconds ({chunk_seconds}) must be at least one segment ({segment_seconds} s)")

    skipped: list[tuple[Path, str]] = []
    entries, fold_lists = read_layout(root, layout)

    scenes = _cut_scenes(entries, sample_rate, chunk_seconds, segment_seconds, skipped)
    if not scenes:
        raise DatasetError(f"{root}: no usable audio found ({layout} layout, {len(skipped)} files skipped)")

    dataset = Dataset(
        root=root,
        layout=layout,
        labels=tuple(sorted({s.label for s in scenes})),
        scenes=scenes,
        sample_rate=sample_rate,
        chunk_seconds=chunk_seconds,
        skipped=skipped,
    )
    if fold_lists:
        dataset.folds = _resolve_folds(dataset, fold_lists)
    log.info("%s", dataset.summary())
    if skipped:
        log.warning("%d of %d files skipped (named above)", len(skipped), len(entries))
    return dataset


def _cut_scenes(
    entries: Sequence[Entry], sample_rate: int, chunk_seconds: float | None, segment_seconds: float, skipped: list[tuple[Path, str]]
) -> list[SceneFile]:
    """The scenes of every readable listed file (from its header); an unusable file is added to ``skipped``."""
    segment_samples = int(round(segment_seconds * sample_rate))
    chunk_samples = None if chunk_seconds is None else int(round(chunk_seconds * sample_rate))
    scenes: list[SceneFile] = []
    for entry in entries:
        if not entry.path.is_file():
            _skip(skipped, entry.path, "listed in the metadata but not found")
            continue
        try:
            info = audio_info(entry.path)
        except AudioFileError as exc:
            _skip(skipped, entry.path, exc)
            continue
        if info.frames == 0 or info.channels == 0:
            _skip(skipped, entry.path, "holds no audio")
            continue
        n_samples = -(-info.frames * sample_rate // info.sample_rate)  # length after resampling (ceil)
        chunks = chunk_bounds(n_samples, chunk_samples, segment_samples)
        if not chunks:
            _skip(skipped, entry.path, f"shorter than one segment ({info.duration:.3f} s < {segment_seconds} s)")
            continue
        for k, (start, stop) in enumerate(chunks):
            scene_id = entry.rel if len(chunks) == 1 else f"{entry.rel}#{k}"
            scenes.append(
                SceneFile(entry.path, entry.label, scene_id, entry.recording_id, start / sample_rate, (stop - start) / sample_rate)
            )
    return scenes


def chunk_bounds(n_samples: int, chunk_samples: int | None, segment_samples: int) -> list[tuple[int, int]]:
    """[start, stop) sample ranges of a file's scenes; a remainder shorter than one segment is dropped."""
    if chunk_samples is None:
        return [(0, n_samples)] if n_samples >= segment_samples else []
    return [
        (start, min(start + chunk_samples, n_samples))
        for start in range(0, n_samples, chunk_samples)
        if min(start + chunk_samples, n_samples) - start >= segment_samples
    ]


def _skip(skipped: list[tuple[Path, str]], path: Path, reason: Exception | str) -> None:
    text = str(reason)
    prefix = f"{path}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    log.warning("skipping %s: %s", path, text)
    skipped.append((path, text))


def _resolve_folds(dataset: Dataset, fold_lists: FoldLists) -> list[Fold]:
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, scene in enumerate(dataset.scenes):
        by_file[rel_path(dataset.root, scene.path)].append(i)
    skipped = {rel_path(dataset.root, p) for p, _ in dataset.skipped if p.is_relative_to(dataset.root)}
    folds = []
    for name, (train_files, test_files) in fold_lists.items():
        sides = []
        for files in (train_files, test_files):
            unknown = [f for f in files if f not in by_file and f not in skipped]
            if unknown:
                log.warning("%s: %d files of %s are not in the dataset's metadata (first: %s)", dataset.root, len(unknown), name, unknown[0])
            sides.append(np.array(sorted(i for f in files for i in by_file.get(f, ())), dtype=np.int64))
        fold = Fold(name, sides[0], sides[1], leaky=False)
        shared = recordings_on_both_sides(dataset, fold)
        if shared:
            log.warning("official %s puts %d recordings on both sides (first: %s)", name, len(shared), shared[0])
            fold.leaky = True
        folds.append(fold)
    return folds


# --- audio and features ---------------------------------------------------------------------------


def iter_scene_audio(dataset: Dataset, scene_indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (scene index, mono float32 samples at the dataset's rate), reading each file once.

    Scenes come grouped by file, in order of first appearance. A file that cannot be decoded is
    reported by name, added to ``dataset.skipped`` and its scenes yield empty arrays.
    """
    indices = range(len(dataset.scenes)) if scene_indices is None else [int(i) for i in scene_indices]
    by_file: dict[Path, list[int]] = {}
    for i in indices:
        by_file.setdefault(dataset.scenes[i].path, []).append(i)
    sr = dataset.sample_rate
    for path, scene_ids in by_file.items():
        try:
            audio = read_audio(path, sr)
        except AudioFileError as exc:
            if all(p != path for p, _ in dataset.skipped):
                _skip(dataset.skipped, path, exc)
            for i in scene_ids:
                yield i, np.zeros(0, dtype=np.float32)
            continue
        for i in scene_ids:
            start, stop = dataset.scenes[i].cut(sr)
            yield i, audio[start:stop]


def load_scene_audio(dataset: Dataset, scene_indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Audio of each scene (in the order of ``scene_indices``); empty for a file that failed to decode."""
    indices = list(range(len(dataset.scenes))) if scene_indices is None else [int(i) for i in scene_indices]
    before = len(dataset.skipped)
    got = dict(iter_scene_audio(dataset, indices))
    failed = len(dataset.skipped) - before
    if failed:
        log.warning("%d files could not be decoded and were skipped", failed)
    return [got[i] for i in indices]


def extract_segments(
    dataset: Dataset,
    extractor: FeatureExtractor,
    scene_indices: Sequence[int] | None = None,
    audio: Sequence[np.ndarray] | None = None,
) -> SegmentSet:
    """Features of every complete 300 ms segment of the given scenes (each scene its own stream).

    ``audio``, if given, holds each scene's samples in the order of ``scene_indices`` (as returned by
    ``load_scene_audio``); otherwise files are read one at a time.
    """
    cfg = extractor.config
    if cfg.sample_rate != dataset.sample_rate:
        raise ValueError(f"extractor runs at {cfg.sample_rate} Hz but the dataset was loaded at {dataset.sample_rate} Hz")
    indices = list(range(len(dataset.scenes))) if scene_indices is None else [int(i) for i in scene_indices]
    if audio is not None:
        if len(audio) != len(indices):
            raise ValueError(f"got audio for {len(audio)} scenes but {len(indices)} scene indices")
        pairs: Iterable[tuple[int, np.ndarray]] = zip(indices, audio)
    else:
        pairs = iter_scene_audio(dataset, indices)
    labels = dataset.scene_labels()
    recordings = dataset.scene_recordings()
    before = len(dataset.skipped)
    feats, scene_of = [], []
    for i, samples in pairs:
        f = extractor.signal_features(samples)  # (n_segments, frames, n_features)
        feats.append(f)
        scene_of.append(np.full(f.shape[0], i, dtype=np.int64))
    if len(dataset.skipped) > before:
        log.warning("%d files could not be decoded and were skipped", len(dataset.skipped) - before)
    if feats:
        features = np.concatenate(feats)
        scene = np.concatenate(scene_of)
        position = np.concatenate([np.arange(f.shape[0], dtype=np.int64) for f in feats])
    else:
        features = np.zeros((0, cfg.frames_per_segment, cfg.n_features), dtype=np.float32)
        scene = position = np.zeros(0, dtype=np.int64)
    log.info("%d segments from %d scenes", scene.shape[0], len(indices))
    return SegmentSet(features, labels[scene], scene, recordings[scene], position, dataset.labels, dataset.recording_ids)


# --- leaks ----------------------------------------------------------------------------------------


def recordings_on_both_sides(dataset: Dataset, fold: Fold) -> list[str]:
    """Recording ids with scenes in both the train and the test side of ``fold`` (empty when leak-free)."""
    train = {dataset.scenes[i].recording_id for i in fold.train}
    test = {dataset.scenes[i].recording_id for i in fold.test}
    return sorted(train & test)
