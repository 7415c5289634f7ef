"""``pytorch-es plot``: learning curves of runs as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytorch_es.cli.common import CLIError


def add_parser(commands: Any) -> None:
    plot = commands.add_parser("plot", help="learning curves of runs as a PNG")
    plot.add_argument("dirs", metavar="DIR", nargs="+", help="run directories (overlaid)")
    plot.add_argument("-o", "--output", metavar="FILE.png", help="default DIR/learning_curve.png (one run)")
    plot.add_argument("--title")
    plot.set_defaults(func=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    from pytorch_es.plotting import plot_runs

    output = args.output
    if output is None:
        output = str(Path(args.dirs[0]) / "learning_curve.png") if len(args.dirs) == 1 else "learning_curves.png"
    if not str(output).lower().endswith(".png"):
        raise CLIError(f"-o {output!r} must end in .png")
    path = plot_runs(args.dirs, output, title=args.title)
    print(f"wrote {path}")
    return 0
