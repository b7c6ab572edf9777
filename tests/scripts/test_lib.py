"""scripts/lib.sh, which the README's two set-up commands source: apt that waits for another apt instead of
failing, and the clone's virtual environment. Real bash, with a fake apt-get first on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lib.sh runs apt-get through sudo when not root")


def fake_apt_get(bin_dir: Path, replies: list[tuple[int, str]]) -> Path:
    """An apt-get that answers call i with replies[i] (exit code, output) and logs its arguments."""
    bin_dir.mkdir(exist_ok=True)
    calls = bin_dir / "calls"
    cases = "\n".join(f"  {i}) echo {text!r}; exit {code};;" for i, (code, text) in enumerate(replies))
    script = bin_dir / "apt-get"
    script.write_text(f'#!/bin/bash\necho "$*" >> {calls}\nn=$(($(wc -l < {calls}) - 1))\ncase $n in\n{cases}\n  *) exit 99;;\nesac\n')
    script.chmod(0o755)
    return calls


def run_lib(snippet: str, bin_dir: Path, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    # sleep is stubbed: the retry loop's waits take no time here
    code = f'set -euo pipefail; source "{REPO}/scripts/lib.sh"; sleep() {{ :; }}; {snippet}'
    full_env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    return subprocess.run(["bash", "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


LOCKED = (100, "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)")


def test_apt_waits_for_another_apt_holding_the_lock_instead_of_failing(tmp_path):
    calls = fake_apt_get(tmp_path / "bin", [LOCKED, LOCKED, (0, "Reading package lists... Done")])
    done = run_lib("apt_retry update", tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("another apt/dpkg holds the lock; waiting") == 2
    assert calls.read_text().splitlines() == ["-o DPkg::Lock::Timeout=600 update"] * 3


def test_apt_gives_up_at_once_on_other_errors_and_after_the_wait_on_a_lock(tmp_path):
    calls = fake_apt_get(tmp_path / "bin", [(100, "E: Unable to locate package nothing-such")])
    assert run_lib("apt_retry install -y nothing-such", tmp_path / "bin").returncode != 0
    assert len(calls.read_text().splitlines()) == 1
    calls = fake_apt_get(tmp_path / "bin2", [LOCKED, LOCKED])
    assert run_lib("apt_retry update", tmp_path / "bin2", APT_WAIT_S="0").returncode != 0
    assert len(calls.read_text().splitlines()) == 1


def test_apt_install_installs_only_what_is_missing_with_a_line_per_step(tmp_path):
    calls = fake_apt_get(tmp_path / "bin", [(0, "lists"), (0, "installed")])
    done = run_lib("apt_install bash edge-asc-no-such-package", tmp_path / "bin")
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == [
        "-o DPkg::Lock::Timeout=600 update",
        "-o DPkg::Lock::Timeout=600 install -y --no-install-recommends edge-asc-no-such-package",
    ]
    assert "==> apt-get install edge-asc-no-such-package" in done.stdout
    calls.unlink()
    done = run_lib("apt_install bash", tmp_path / "bin")
    assert "==> system packages already installed: bash" in done.stdout and not calls.exists()


def test_the_virtual_environment_is_made_once_in_the_clone_and_sees_the_machines_packages(tmp_path):
    done = run_lib("make_venv && make_venv", tmp_path / "bin", cwd=tmp_path, PYTHON=sys.executable)
    assert done.returncode == 0, done.stderr
    assert "==> creating the virtual environment .venv" in done.stdout and "==> using the virtual environment .venv" in done.stdout
    cfg = (tmp_path / ".venv" / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    # the machine's packages: the base interpreter's site-packages are on the new environment's path (which
    # packages they hold depends on the machine: a stock Debian python has neither numpy nor pip there)
    code = "import site, sys; print(sys.prefix); print(sys.base_prefix); print(*site.getsitepackages(), sep='\\n'); print(*sys.path, sep='\\n')"
    probe = subprocess.run([str(tmp_path / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    prefix, base, *paths = probe.stdout.splitlines()
    assert Path(prefix) == tmp_path / ".venv"
    assert any(Path(path).is_relative_to(base) and "-packages" in path for path in paths), paths
