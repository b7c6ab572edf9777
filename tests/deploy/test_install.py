"""Deployment: deploy/install.sh and deploy/uninstall.sh run for real into disposable roots, and the unit.

Each root is a directory made here with the files of a Debian image that the scripts touch
(/etc/passwd, group, shadow, gshadow with an existing user in group audio, systemd's own units copied
from this machine). The install is real: useradd/usermod/userdel --prefix edit the root's user
database, the venv is a real venv (--system-site-packages and pip --no-deps --no-build-isolation
keep it offline and fast, borrowed_site() lends it the test environment's packages; the full install
from PyPI is bench/bench_install.sh), the artifacts are the
tiny real model and index of tests/conftest.py, the installed daemon checks them
(--check-config), and `systemctl --root` enables the unit offline. No systemd runs in CI, so the
only stand-in is the recording systemctl of the test that exercises the "systemd is running" branch;
`bash bench/bench_install.sh --systemd` runs the same install under a booted systemd (nspawn).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import pytest

from conftest import REPO

INSTALL = REPO / "deploy" / "install.sh"
UNINSTALL = REPO / "deploy" / "uninstall.sh"
UNIT_SRC = REPO / "systemd" / "edge-asc.service"
UNIT_NAME = "edge-asc.service"
HOST_UNITS = Path("/usr/lib/systemd/system")

PASSWD = "root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
GROUP = "root:x:0:\naudio:x:29:pi\npi:x:1000:\n"
SHADOW = "root:*:19000:0:99999:7:::\npi:*:19000:0:99999:7:::\n"
GSHADOW = "root:*::\naudio:*::pi\npi:!::\n"
USER_DB = ("passwd", "group", "shadow", "gshadow")

_as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the install chowns files to the service user: run as root")
_tools = pytest.mark.skipif(shutil.which("systemctl") is None or shutil.which("useradd") is None,
                            reason="needs systemctl and useradd (apt install systemd passwd)")


def needs_install(test):
    """The tests that run the scripts."""
    return _as_root(_tools(test))


# --- helpers ----------------------------------------------------------------------------------------


def make_root(path: Path) -> Path:
    """A disposable root with what a fresh Debian-based image has where the scripts look."""
    etc = path / "etc"
    (etc / "systemd" / "system").mkdir(parents=True)
    (path / "opt").mkdir()
    (path / "var" / "lib").mkdir(parents=True)
    for name, text in zip(USER_DB, (PASSWD, GROUP, SHADOW, GSHADOW)):
        (etc / name).write_text(text)
    (etc / "shadow").chmod(0o640)
    (etc / "gshadow").chmod(0o640)
    if HOST_UNITS.is_dir():  # systemd's units, for systemctl --root and systemd-analyze verify --root
        shutil.copytree(HOST_UNITS, path / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (path / "usr" / "bin").mkdir(parents=True, exist_ok=True)  # merged /usr, as Debian 12: /bin -> usr/bin
    (path / "bin").symlink_to("usr/bin")
    if shutil.which("kill"):  # procps's kill, which the unit's ExecReload runs
        shutil.copy2(shutil.which("kill"), path / "usr" / "bin" / "kill")
    return path


def copy_source(dest: Path) -> Path:
    """The files install.sh reads from a clone, frozen: the shared working tree may change meanwhile."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("edge_asc", "systemd", "docs"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def source_of(root: Path) -> Path:
    """The frozen source tree beside a disposable root (made on first use)."""
    src = root.parent / "src"
    return src if src.exists() else copy_source(src)


def diff(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def borrowed_site() -> dict[str, str]:
    """PYTHONPATH naming the test environment's own site-packages, when the tests run in a venv.

    The offline install's venv (--system-site-packages, --without-pip) takes pip and the runtime's
    dependencies from elsewhere. A venv made by a venv's interpreter sees the base interpreter's site
    only: a pyenv build has them there, a stock Debian python (PEP 668) has neither pip nor numpy, and
    they are in the clone's .venv alone. PYTHONPATH comes before the venv's own site-packages, but
    edge_asc is editable in .venv and its .pth is read in site directories only: the installed copy
    is the one imported."""
    if sys.prefix == sys.base_prefix:
        return {}
    paths = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    return {"PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(autouse=True)
def _borrowed_site(monkeypatch):
    """Every command a test runs from the installed venv sees the packages the install borrowed."""
    for key, value in borrowed_site().items():
        monkeypatch.setenv(key, value)


def install_env(root: Path, artifacts, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **borrowed_site())
    env.pop("NOTIFY_SOCKET", None)
    env.update(
        EDGE_ASC_SRC=str(source_of(root)),
        EDGE_ASC_ROOT=str(root),
        SKIP_APT="1",
        PYTHON=sys.executable,
        VENV_ARGS="--system-site-packages --without-pip",
        PIP_ARGS="--no-deps --no-build-isolation --no-index",
        MODEL_SRC=str(artifacts.model),
        INDEX_SRC=str(artifacts.index),
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=300)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc.stdout


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: type, mode, owner, size, mtime and content hash (or link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                what = None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                             st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns, what)
    return out


def user_entry(root: Path, db: str, name: str) -> list[str] | None:
    for line in (root / "etc" / db).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def unit_settings(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment of a unit file, in order (keys may repeat)."""
    section, out = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def setting(text: str, key: str) -> list[str]:
    return [v for _, k, v in unit_settings(text) if k == key]


def venv_distributions(venv: Path) -> set[str]:
    code = (
        "import importlib.metadata as md, sysconfig\n"
        "paths = sorted({sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']})\n"
        "print('\\n'.join(sorted(d.metadata['Name'] for d in md.distributions(path=paths))))\n"
    )
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tiny_artifacts):
    """One real install into a disposable root, shared by the tests that only read it."""
    root = make_root(tmp_path_factory.mktemp("deploy") / "root")
    before = snapshot(root)
    started = time.monotonic()
    proc = run_script(INSTALL, install_env(root, tiny_artifacts))
    seconds = time.monotonic() - started
    ok(proc)
    return {"root": root, "proc": proc, "before": before, "seconds": seconds}


# --- the unit file ------------------------------------------------------------------------------------


def test_unit_has_the_required_settings():
    text = UNIT_SRC.read_text()
    expect = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "edge-asc", "Group": "edge-asc",
        "SupplementaryGroups": "audio", "RuntimeDirectory": "edge-asc", "RuntimeDirectoryMode": "0750",
        "StateDirectory": "edge-asc", "ConfigurationDirectory": "edge-asc", "UMask": "0007",
        "ExecStart": "/opt/edge-asc/bin/edge-asc run --config /etc/edge-asc/config.yaml",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "no", "DeviceAllow": "char-alsa rw", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "WantedBy": "multi-user.target",
    }
    for key, value in expect.items():
        assert setting(text, key) == [value], f"{key}= is {setting(text, key)}, expected {value!r}"
    assert re.fullmatch(r"\d+s", setting(text, "WatchdogSec")[0])
    env = " ".join(setting(text, "Environment"))
    assert "EDGE_ASC_MODEL=/var/lib/edge-asc/models/edge-asc-amb13.onnx" in env
    assert "EDGE_ASC_INDEX=/var/lib/edge-asc/index/edge-asc-amb13" in env
    # the paths the unit names are the ones the daemon looks up by default (edge_asc/paths.py)
    from edge_asc import paths

    assert f"/var/lib/edge-asc/models/{paths.DEFAULT_MODEL_NAME}" in env and paths.MODEL_ENV in env
    assert f"/var/lib/edge-asc/index/{paths.DEFAULT_INDEX_NAME}" in env and paths.INDEX_ENV in env


def test_memory_deny_write_execute_matches_what_the_runtime_tolerates(tiny_artifacts):
    """The kernel's PR_SET_MDWE (what MemoryDenyWriteExecute= enforces): the encoder, features and index
    must run under it; sounddevice's cffi callback decides whether the unit can switch it on."""
    code = textwrap.dedent(
        """
        import ctypes, json, mmap, sys
        import numpy as np
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            print(json.dumps({"mdwe": False})); sys.exit(0)
        out = {"mdwe": True}
        try:
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
            out["wx_mmap"] = True
        except OSError:
            out["wx_mmap"] = False
        from edge_asc.runtime.encoder import Encoder
        from edge_asc.dsp.features import FeatureExtractor
        from edge_asc.runtime.index import SegmentIndex
        enc = Encoder(sys.argv[1])
        index = SegmentIndex.load(sys.argv[2], enc.meta)
        feats = FeatureExtractor(enc.meta.feature_config).signal_features(np.random.default_rng(0).standard_normal(16000).astype(np.float32))
        labels, dist, ids = index.query(enc.embed(feats), 1)
        out["runtime"] = int(labels.shape[0])
        import sounddevice as sd
        try:
            sd._ffi.callback("PaStreamCallback")(lambda *a: 0)
            out["cffi_callback"] = True
        except MemoryError:
            out["cffi_callback"] = False
        print(json.dumps(out))
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_artifacts.model), str(tiny_artifacts.index)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["mdwe"]:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result["wx_mmap"] is False, "PR_SET_MDWE did not refuse a writable+executable mapping"
    assert result["runtime"] > 0  # onnxruntime, numpy features and hnswlib all ran under it
    expected = "yes" if result["cffi_callback"] else "no"
    assert setting(UNIT_SRC.read_text(), "MemoryDenyWriteExecute") == [expected], result


# --- install ------------------------------------------------------------------------------------------


@needs_install
def test_install_creates_the_layout(installed, tiny_artifacts):
    root, out = installed["root"], installed["proc"].stdout
    # the user: a system user in its own group and in audio, the existing member of audio kept
    user = user_entry(root, "passwd", "edge-asc")
    assert user is not None and int(user[2]) < 1000 and user[5] == "/var/lib/edge-asc" and user[6] == "/usr/sbin/nologin"
    gid = int(user_entry(root, "group", "edge-asc")[2])
    assert int(user[3]) == gid
    assert user_entry(root, "group", "audio")[3].split(",") == ["pi", "edge-asc"]
    assert user_entry(root, "shadow", "edge-asc") is not None
    # the venv: runs, holds the package only (no torch: the runtime has no training dependency)
    venv = root / "opt" / "edge-asc"
    version = subprocess.run([str(venv / "bin" / "edge-asc"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("edge-asc ")
    dists = venv_distributions(venv)
    assert "edge-asc" in dists and not {"torch", "librosa", "matplotlib"} & {d.lower() for d in dists}
    assert "no torch, librosa or matplotlib" in out
    # model and index: identical copies, root-owned and readable by the group edge-asc only
    state = root / "var" / "lib" / "edge-asc"
    model = state / "models" / "edge-asc-amb13.onnx"
    index = state / "index" / "edge-asc-amb13"
    assert model.read_bytes() == tiny_artifacts.model.read_bytes()
    assert sorted(p.name for p in index.iterdir()) == sorted(p.name for p in tiny_artifacts.index.iterdir())
    for p in index.iterdir():
        assert p.read_bytes() == (tiny_artifacts.index / p.name).read_bytes()
    st = state.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, int(user[2]), gid)
    for p in (model, *index.iterdir()):
        st = p.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid), p
    # the config: the daemon's own default, readable by the service, not writable by it
    conf = root / "etc" / "edge-asc" / "config.yaml"
    dumped = subprocess.run([str(venv / "bin" / "edge-asc"), "run", "--dump-config"], capture_output=True, text=True, check=True)
    assert conf.read_text() == dumped.stdout
    st = conf.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)
    assert "config OK" in out  # the installed daemon loaded the installed model and index
    # the unit, enabled (offline, systemctl --root): the symlink systemd follows at boot
    unit = root / "etc" / "systemd" / "system" / UNIT_NAME
    assert unit.read_bytes() == (source_of(root) / "systemd" / UNIT_NAME).read_bytes()
    link = root / "etc" / "systemd" / "system" / "multi-user.target.wants" / UNIT_NAME
    assert os.readlink(link) == f"/etc/systemd/system/{UNIT_NAME}"
    assert "enabled but not started" in out
    # building the package left nothing in the source tree
    src = source_of(root)
    assert not (src / "build").exists() and not list(src.glob("*.egg-info"))


@needs_install
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt install systemd)")
def test_systemd_analyze_verify_passes_on_the_installed_unit(installed, tmp_path):
    """verify --root checks the unit where it was installed, ExecStart included (the real venv)."""
    root = installed["root"]
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", UNIT_NAME], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    # the same unit in a root without the venv fails: verify really looks at ExecStart
    bare = make_root(tmp_path / "bare")
    shutil.copy(UNIT_SRC, bare / "etc" / "systemd" / "system" / UNIT_NAME)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={bare}", UNIT_NAME], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "/opt/edge-asc/bin/edge-asc" in proc.stderr
    # and the hardening holds: systemd's own exposure score (0 best, 10 worst)
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}", UNIT_NAME],
                          capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert score is not None, proc.stdout + proc.stderr
    assert float(score.group(1)) <= 2.5, proc.stdout


@needs_install
def test_installed_daemon_starts_as_the_unit_says(installed, tiny_artifacts, tmp_path):
    """ExecStart and Environment= of the installed unit, run with systemd's notify protocol: READY=1,
    WATCHDOG=1 within WatchdogSec, a subscriber served, SIGTERM a clean exit. Paths are mapped into the
    root; the source is a file and the socket a temporary path (no microphone, no /run here)."""
    root = installed["root"]
    text = (root / "etc" / "systemd" / "system" / UNIT_NAME).read_text()

    def into_root(s: str) -> str:
        return re.sub(r"(?<![\w/])/(opt|var/lib|etc)/edge-asc", lambda m: f"{root}/{m.group(1)}/edge-asc", s)

    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "XDG_RUNTIME_DIR", "WATCHDOG_USEC", "WATCHDOG_PID")}
    for name in " ".join(setting(text, "UnsetEnvironment")).split():
        env.pop(name, None)
    for assignment in " ".join(setting(text, "Environment")).split():
        key, _, value = assignment.partition("=")
        env[key] = into_root(value)
    assert int(setting(text, "WatchdogSec")[0].rstrip("s")) >= 2
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(1.0)
    sock_path = tmp_path / "run" / "edge-asc.sock"
    # a 2 s watchdog (the unit's is longer) so that the keep-alive repeats within the test
    env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="2000000")
    argv = into_root(setting(text, "ExecStart")[0]).split()
    argv += ["--source", f"file:{tiny_artifacts.clips['rain']}", "--realtime", "--socket", str(sock_path)]
    proc = subprocess.Popen(argv, env=env, cwd=root / "var" / "lib" / "edge-asc", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 30
        pings: list[float] = []
        while time.monotonic() < deadline and len(pings) < 3:
            try:
                messages.append(notify.recv(4096).decode())
            except TimeoutError:
                assert proc.poll() is None, proc.communicate()
                continue
            if "WATCHDOG=1" in messages[-1]:
                pings.append(time.monotonic())
        ready = [i for i, m in enumerate(messages) if m.split("\n")[0] == "READY=1"]
        assert len(ready) == 1, messages
        assert len(pings) == 3, messages
        assert max(b - a for a, b in zip(pings, pings[1:])) < 2.0  # well within the watchdog interval
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o660
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(sock_path))
            hello = json.loads(client.makefile().readline())
        assert hello["labels"] == [*tiny_artifacts.labels, "silence"]  # the level gate's label comes last
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        notify.close()
    assert proc.returncode == 0, stderr
    assert not sock_path.exists()


@needs_install
def test_install_again_changes_nothing_keeps_an_edited_config_and_uninstalls(tmp_path, tiny_artifacts):
    root = make_root(tmp_path / "root")
    pristine = snapshot(root)
    env = install_env(root, tiny_artifacts)
    ok(run_script(INSTALL, env))
    first = snapshot(root)

    out = ok(run_script(INSTALL, env))
    assert "nothing changed" in out
    assert diff(snapshot(root), first) == []  # same files, contents, modes, owners and mtimes
    assert "useradd" not in out and "pip install" not in out

    conf = root / "etc" / "edge-asc" / "config.yaml"
    default = conf.read_text()
    edited = default.replace("\n  k: 3 ", "\n  k: 5 ")
    assert edited != default
    conf.write_text(edited)
    out = ok(run_script(INSTALL, env))
    assert conf.read_text() == edited and "k=5" in out  # kept, and checked by the installed daemon
    assert (root / "etc" / "edge-asc" / "config.yaml.dist").read_text() == default
    edited_state = snapshot(root)
    out = ok(run_script(INSTALL, env))
    assert "nothing changed" in out and diff(snapshot(root), edited_state) == []

    # uninstall: everything install made goes, the edited config stays (no --purge)
    out = ok(run_script(UNINSTALL, env))
    for gone in ("opt/edge-asc", "var/lib/edge-asc", f"etc/systemd/system/{UNIT_NAME}",
                 f"etc/systemd/system/multi-user.target.wants/{UNIT_NAME}"):
        assert not os.path.lexists(root / gone), gone
    assert conf.read_text() == edited
    for db in USER_DB:
        assert user_entry(root, db, "edge-asc") is None, db
    assert user_entry(root, "group", "audio")[3] == "pi"
    out = ok(run_script(UNINSTALL, env))  # twice is fine
    assert "no user edge-asc" in out

    ok(run_script(UNINSTALL, env, "--purge"))
    assert not (root / "etc" / "edge-asc").exists()
    # back to the pristine root, apart from the backups useradd/userdel keep (passwd- ...)
    after = snapshot(root)
    backups = {f"etc/{db}-" for db in USER_DB}
    assert set(after) - set(pristine) <= backups
    assert set(pristine) == set(after) - backups
    for db in USER_DB:
        assert (root / "etc" / db).read_text() == {"passwd": PASSWD, "group": GROUP, "shadow": SHADOW, "gshadow": GSHADOW}[db]


@needs_install
def test_install_refuses_missing_or_mismatched_artifacts(tmp_path, tiny_artifacts):
    root = make_root(tmp_path / "root")
    pristine = snapshot(root)
    missing = tmp_path / "models" / "edge-asc-amb13.onnx"
    proc = run_script(INSTALL, install_env(root, tiny_artifacts, MODEL_SRC=str(missing)))
    assert proc.returncode != 0 and f"model not found: {missing}" in proc.stderr
    proc = run_script(INSTALL, install_env(root, tiny_artifacts, INDEX_SRC=str(tmp_path / "nowhere")))
    assert proc.returncode != 0 and "index not found" in proc.stderr
    # the index was built for another encoder
    proc = run_script(INSTALL, install_env(root, tiny_artifacts, MODEL_SRC=str(tiny_artifacts.other_model)))
    assert proc.returncode != 0 and "encoder sha256" in proc.stderr
    assert diff(snapshot(root), pristine) == []  # refused before touching anything


@needs_install
def test_install_with_a_running_systemd_reloads_and_restarts_only_on_change(installed, tiny_artifacts, tmp_path):
    """The branch for a booted system: systemctl is a recording stand-in (no systemd runs here)."""
    root = installed["root"]
    log, state = tmp_path / "calls", tmp_path / "state"
    stub = tmp_path / "systemctl"
    stub.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        echo "$*" >> {log}
        case $1 in
            is-enabled) [[ -f {state}.enabled ]] && {{ echo enabled; exit 0; }}; echo disabled; exit 1 ;;
            is-active) [[ -f {state}.active ]] && exit 0; exit 3 ;;
            enable) touch {state}.enabled; [[ $2 == --now ]] && touch {state}.active ;;
            start | restart) touch {state}.active ;;
        esac
        exit 0
        """))
    stub.chmod(0o755)
    # CHECK=0: the installed daemon's own check is covered above; here only the systemctl calls matter
    env = install_env(root, tiny_artifacts, SYSTEMCTL=str(stub), EDGE_ASC_SYSTEMD="online", CHECK="0")

    def calls() -> list[str]:
        text = log.read_text() if log.exists() else ""
        log.unlink(missing_ok=True)
        return text.splitlines()

    ok(run_script(INSTALL, env))
    assert calls() == [f"is-enabled {UNIT_NAME}", f"enable --now {UNIT_NAME}"]
    out = ok(run_script(INSTALL, env))
    assert calls() == [f"is-enabled {UNIT_NAME}", f"is-active --quiet {UNIT_NAME}"] and "nothing changed" in out
    unit = root / "etc" / "systemd" / "system" / UNIT_NAME
    with unit.open("a") as f:
        f.write("# edited in place\n")
    ok(run_script(INSTALL, env))
    assert calls() == ["daemon-reload", f"is-enabled {UNIT_NAME}", f"is-active --quiet {UNIT_NAME}", f"restart {UNIT_NAME}"]
    assert unit.read_bytes() == (source_of(root) / "systemd" / UNIT_NAME).read_bytes()
    ok(run_script(INSTALL, env))
    assert "restart" not in " ".join(calls())


@needs_install
def test_network_allow_writes_a_dropin_and_the_mqtt_password_becomes_private(installed, tiny_artifacts):
    """MQTT to a broker elsewhere: its address in a drop-in (the unit denies all but localhost); the password
    file readable by the service user only (group edge-asc holds the socket's clients)."""
    root = installed["root"]
    secret = root / "etc" / "edge-asc" / "mqtt.password"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    dropin = root / "etc" / "systemd" / "system" / f"{UNIT_NAME}.d" / "network.conf"
    out = ok(run_script(INSTALL, install_env(root, tiny_artifacts, CHECK="0", NETWORK_ALLOW="192.0.2.10 2001:db8::/32")))
    assert setting(dropin.read_text(), "IPAddressAllow") == ["192.0.2.10 2001:db8::/32"]
    user = user_entry(root, "passwd", "edge-asc")
    st = secret.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o400, int(user[2]), int(user[3])) and "hunter2" not in out
    assert "nothing changed" in ok(run_script(INSTALL, install_env(root, tiny_artifacts, CHECK="0")))  # unset: kept
    bad = run_script(INSTALL, install_env(root, tiny_artifacts, CHECK="0", NETWORK_ALLOW="broker.local"))
    assert bad.returncode != 0 and "not an IP address" in bad.stderr + bad.stdout
    ok(run_script(INSTALL, install_env(root, tiny_artifacts, CHECK="0", NETWORK_ALLOW="")))
    assert not dropin.exists()
