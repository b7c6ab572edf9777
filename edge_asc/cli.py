"""The ``edge-asc`` command: one sub-command per module in edge_asc/commands/.

Each command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and keeps
its heavy imports (torch, onnxruntime...) inside ``run``, so ``edge-asc run`` never loads torch. A command
may define ``log_level(args) -> str | None``, the level its settings ask for. Logging is configured here
and nowhere else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge_asc import __version__
from edge_asc.config import ConfigError
from edge_asc.daemon.config import LOG_LEVELS

log = logging.getLogger(__name__)

TRAIN_EXTRA = ("torch", "onnx", "librosa", "matplotlib", "tqdm")  # pyproject's [train] extra: not on a device

# sub-command name -> module under edge_asc.commands
COMMANDS = {
    "train": "train",
    "export": "export",
    "build-index": "build_index",
    "evaluate": "evaluate",
    "devices": "devices",
    "run": "run",
    "listen": "listen",
    "classify": "classify",
    "enroll": "enroll",
    "labels": "labels",
    "forget": "forget",
    "demo": "demo",
    "data": "data",
}


def configure_logging(level: str = "INFO") -> None:
    """Plain single lines on stderr (journald adds its own timestamps)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default once: not for flags without one (None, required, SUPPRESS), nor when the
    help text already names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.required or "default" in text or isinstance(action.default, bool) and not action.default:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-asc", description="Acoustic scene classification after 300 ms of audio.")
    parser.add_argument("--version", action="version", version=f"edge-asc {__version__}")
    parser.add_argument(
        "--log-level", default=None, choices=LOG_LEVELS,
        help="logging level (default: INFO; for run, the config file's log_level); overrides the config file",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"{__package__}.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.commands.{module_name}":
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _log_level=getattr(module, "log_level", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # --log-level wins (even when it names the default); else the command's own setting (run: the config file's)
    configure_logging(args.log_level or (args._log_level and args._log_level(args)) or "INFO")
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        log.error("configuration: %s", exc)
        return 2
    except ModuleNotFoundError as exc:  # a training command on the device install (no torch)
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        log.error("edge-asc %s needs the training extra, which this installation lacks (no module %s): "
                  "pip install '.[train]' in a clone", args.command, exc.name)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
