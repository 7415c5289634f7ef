"""The ``pytorch-es`` command: train, evaluate, watch and plot Gymnasium agents.

::

    pytorch-es train CartPole-v1                      # the env's preset, stops at its target
    pytorch-es train LunarLander-v3 --out runs/ll --tensorboard
    pytorch-es train --config my.toml                 # settings from a file (pytorch-es presets NAME > my.toml)
    pytorch-es train --resume runs/ll                 # continue after a crash or Ctrl-C
    pytorch-es eval runs/ll --episodes 100 --seed 1000 --json
    pytorch-es play runs/ll --gif lander.gif
    pytorch-es plot runs/a runs/b -o curves.png
    pytorch-es presets                                # the tuned presets

One module per subcommand (``train``, ``evaluate``, ``play``, ``plot``, ``presets``); this
one parses and dispatches. Bad input (unknown env id, bad option values, missing or
corrupted files) is reported as one line on stderr with a non-zero exit status, never a
traceback. ``--help`` and usage errors need argparse only: torch (seconds to import) is
imported after them.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from pytorch_es.cli import evaluate, play, plot, presets, train
from pytorch_es.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_TARGET_MISSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CLIError,
    Parser,
    Terminated,
)
from pytorch_es.cli.train import checkpoint_note as _checkpoint_note

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_TARGET_MISSED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CLIError",
    "_checkpoint_note",
    "build_parser",
    "main",
]


def build_parser() -> Parser:
    from pytorch_es._version import __version__

    parser = Parser(
        prog="pytorch-es",
        description="Train PyTorch policies on Gymnasium envs with evolution strategies.",
    )
    parser.add_argument("--version", action="version", version=f"pytorch-es {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for module in (train, evaluate, play, plot, presets):
        module.add_parser(commands)
    return parser


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


def _warning_line(command: str):
    """Warnings as one line (``pytorch-es train: warning: ...``), without the source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
        print(f"pytorch-es {command}: warning: {text}", file=sys.stderr if file is None else file, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pytorch-es`` and ``python -m pytorch_es``; returns the exit status.

    ``argv=None`` (the command line) means this process is the command. Then, once the
    command has finished (and reported), SIGINT and SIGTERM are ignored, so that a late
    Ctrl-C or a signal storm cannot raise a traceback out of the exit path, and the
    objects alive at the end are frozen out of the garbage collector, since the
    collections at interpreter exit over torch's (and torch._dynamo's) objects took about
    2 s here.
    """
    if argv is not None:
        return _main(argv)
    code = EXIT_INTERRUPTED  # if a Ctrl-C escapes the command's own handling while it returns
    try:
        code = _main(argv)
    except KeyboardInterrupt:
        _ignore_exit_signals()
    finally:
        _ignore_exit_signals()
    gc.freeze()
    return code


def _ignore_exit_signals() -> None:
    """SIG_IGN for SIGINT and SIGTERM (CPython then skips any already pending); a
    KeyboardInterrupt raised before the first call took effect is absorbed and retried."""
    if threading.current_thread() is not threading.main_thread():
        return
    while True:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check = getattr(args, "check_usage", None)
        if check is not None:
            check(args)  # before importing torch: a usage error costs argparse only
    except CLIError as error:
        print(f"pytorch-es {args.command}: error: {error} (see pytorch-es {args.command} --help)", file=sys.stderr)
        return error.code
    known: tuple[type[BaseException], ...] = (CLIError, ValueError, TypeError, OSError, ImportError)
    try:
        import gymnasium

        known = (*known, gymnasium.error.Error)
    except ImportError:  # pragma: no cover - gymnasium is needed by train/eval/play only
        pass
    if args.command != "plot":  # torch is imported anyway; plot stays light
        from pytorch_es.evaluation.backend import WorkerSetupError
        from pytorch_es.evaluation.base import MemberEvaluationError

        known = (*known, MemberEvaluationError, WorkerSetupError)  # one line, the traceback under PYTORCH_ES_DEBUG
    debug = os.environ.get("PYTORCH_ES_DEBUG") not in (None, "", "0")
    if args.command != "plot" and not os.environ.get("OMP_NUM_THREADS"):
        import torch

        # Policies here are small: intra-op threads only add synchronisation, and on a
        # busy machine a 2-thread tanh of 4k floats took 2.4 ms instead of 45 us.
        torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.filterwarnings("ignore", module="gymnasium")
                warnings.filterwarnings("ignore", module="pygame")
                # a refused pickle is reported as an error; torch's warning would be a 2nd line
                warnings.filterwarnings("ignore", message="Detected pickle protocol")
                warnings.showwarning = _warning_line(args.command)  # restored by catch_warnings
            return int(args.func(args))
    except KeyboardInterrupt:
        if argv is None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping: more Ctrl-C must not cut this short
        print(f"pytorch-es {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:  # SIGTERM before or after the training loop (which handles its own)
        print(f"pytorch-es {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # e.g. `pytorch-es eval DIR | head -1`: stop quietly, like other tools
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13
    except known as error:
        if debug:
            raise
        code = error.code if isinstance(error, CLIError) else EXIT_ERROR
        print(f"pytorch-es {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return code
    except Exception as error:  # not foreseen (e.g. a user's env raising): still one line
        if debug:
            raise
        print(
            f"pytorch-es {args.command}: error: {type(error).__name__}: {_one_line(error)} "
            "(PYTORCH_ES_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR

