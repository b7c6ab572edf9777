"""Nothing in the repository is audio: recordings from ../shared must never be committed, and the demo fetches
its audio from Debian's archive (edge_asc.demo_audio). Checked on every tracked or addable file, by name and
by content (the magic numbers of the usual audio containers)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".au", ".caf", ".wma", ".webm", ".mka", ".raw", ".pcm"}


def audio_kind(head: bytes) -> str | None:
    """The audio container that ``head`` (a file's first 12 bytes) starts, or None."""
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"RF64"):
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:12].startswith(b"ftypM4A", 4) or head[4:11] == b"ftypM4A":
        return "m4a"
    for magic, kind in ((b"fLaC", "flac"), (b"OggS", "ogg"), (b"ID3", "mp3"), (b".snd", "au"), (b"caff", "caf")):
        if head.startswith(magic):
            return kind
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # an MPEG audio frame header
        return "mp3"
    return None


def repository_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.split(b"\0")  # fmt: skip
    return [REPO / name.decode() for name in listed if name and (REPO / name.decode()).is_file()]


def test_the_magic_numbers_of_audio_files_are_recognised():
    assert audio_kind(b"RIFF\x24\x00\x00\x00WAVEfmt ") == "wav"
    assert audio_kind(b"fLaC\x00\x00\x00\x22") == "flac" and audio_kind(b"OggS\x00\x02") == "ogg"
    assert audio_kind(b"ID3\x04\x00") == "mp3" and audio_kind(b"\xff\xfb\x90\x00") == "mp3"
    assert audio_kind(b"# edge-asc\n") is None and audio_kind(b"\x89PNG\r\n\x1a\n") is None


def test_no_file_in_the_repository_is_audio_by_name_or_content():
    found = []
    for path in repository_files():
        with path.open("rb") as fh:
            kind = audio_kind(fh.read(12))
        if path.suffix.lower() in AUDIO_EXTENSIONS or kind is not None:
            found.append(f"{path.relative_to(REPO)} ({kind or path.suffix})")
    assert not found, "audio in the repository: " + ", ".join(found)
