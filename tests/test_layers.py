"""The layer rule: dsp/, runtime/, daemon/ and protocol/ (and the shared top-level modules they use: config,
contract, fsutil, paths) never import training/, evaluation/, torch, onnx, librosa or matplotlib.

Read from the source (every import statement, also inside functions, absolute or relative) and checked by
importing each runtime module in a fresh interpreter. The device install (``pip install .``) has no torch,
so a runtime import of it would fail there and nowhere else.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge_asc"
RUNTIME_LAYERS = ("dsp", "runtime", "daemon", "protocol")
SHARED_MODULES = ("bounded.py", "config.py", "contract.py", "fsutil.py", "paths.py")  # top-level modules the runtime layers use
FORBIDDEN_PACKAGES = ("edge_asc.training", "edge_asc.evaluation")
FORBIDDEN_LIBRARIES = ("torch", "onnx", "librosa", "matplotlib")  # the training extra: not on a device


def runtime_sources() -> list[Path]:
    layers = [p for layer in RUNTIME_LAYERS for p in (PACKAGE / layer).rglob("*.py")]
    return sorted(layers + [PACKAGE / name for name in SHARED_MODULES])


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved; ``from a import b`` gives a.b too."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, package_dir).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, package_dir: Path = PACKAGE) -> list[str]:
    bad = []
    for line, name in imported_names(path, package_dir):
        top = name.split(".")[0]
        if top in FORBIDDEN_LIBRARIES or any(name == p or name.startswith(p + ".") for p in FORBIDDEN_PACKAGES):
            bad.append(f"{path.relative_to(package_dir.parent)}:{line} imports {name}")
    return sorted(set(bad))


def test_the_rule_is_checked_on_every_runtime_module():
    names = {module_name(p) for p in runtime_sources()}
    for expected in ("edge_asc.dsp.features", "edge_asc.runtime.index", "edge_asc.daemon.daemon", "edge_asc.protocol.server", "edge_asc.contract"):
        assert expected in names


@pytest.mark.parametrize(
    "source,expected",
    [
        ("import torch", "torch"),
        ("import torch.nn as nn", "torch.nn"),
        ("import onnx", "onnx"),
        ("from librosa.feature import mfcc", "librosa.feature"),
        ("def f():\n    import matplotlib.pyplot as plt\n", "matplotlib.pyplot"),
        ("from edge_asc.training.train import fit_scenes", "edge_asc.training.train"),
        ("from edge_asc import evaluation", "edge_asc.evaluation"),
        ("from ..training import export", "edge_asc.training"),
        ("from ..evaluation.report import write_report", "edge_asc.evaluation.report"),
        ("class A:\n    def f(self):\n        from .. import training\n", "edge_asc.training"),
        ("from edge_asc.dsp.features import FeatureConfig\nfrom . import index\nimport numpy\n", None),
    ],
)
def test_the_source_check_finds_every_kind_of_forbidden_import_and_only_those(tmp_path, source, expected):
    fake = tmp_path / "edge_asc" / "runtime" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    found = violations(fake, tmp_path / "edge_asc")
    if expected is None:
        assert found == []
    else:
        assert any(v.endswith(f"imports {expected}") for v in found), found


def test_no_runtime_module_imports_training_evaluation_or_heavy_libraries_in_its_source():
    bad = [v for path in runtime_sources() for v in violations(path)]
    assert not bad, "the layer rule is broken:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted({module_name(p) for p in runtime_sources()}))
def test_importing_a_runtime_module_loads_no_heavy_library(module):
    code = (
        f"import sys, {module}\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN_LIBRARIES!r}"
        f" or m.startswith({FORBIDDEN_PACKAGES!r}))\n"
        "print(','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"importing {module} loaded {proc.stdout.strip()}"
