"""Learning curves from run directories: ``pytorch-es plot DIR [DIR ...] -o FILE.png``.

Two panels, reward against generations and against environment steps. Each run is
one color: its population mean reward as a line, the population min-max as a band,
and the greedy test reward of the center as dots joined by a dashed line. Runs are
overlaid for comparison; a dotted line marks the target when all runs share one.
Uses matplotlib's non-interactive Agg backend: no display needed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_es.io import atomic_write, check_output_path
from pytorch_es.training.metrics import METRICS_NAME, read_metrics


def load_run(directory: str | os.PathLike[str]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """``(label, metrics rows, config)`` of a run directory, or a clear error."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"run directory {str(directory)!r} does not exist")
    metrics = path / METRICS_NAME
    if not metrics.is_file():
        raise FileNotFoundError(f"{str(directory)!r} has no {METRICS_NAME}: is it a pytorch-es run directory?")
    rows = read_metrics(metrics)
    if not rows:
        raise ValueError(f"{str(metrics)!r} has no rows yet (no generation finished)")
    config: dict[str, Any] = {}
    config_path = path / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            config = {}
        if not isinstance(config, dict):
            config = {}
    name = path.resolve().name
    env_id = config.get("env_id")
    label = name if not env_id or str(env_id) in name else f"{env_id} ({name})"
    return label, rows, config


def _series(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float("nan") if row.get(key) is None else float(row[key]) for row in rows]


def plot_runs(
    directories: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> Path:
    """Draw the learning curves of ``directories`` into the PNG ``output`` (atomically)."""
    if not directories:
        raise ValueError("plot needs at least one run directory")
    runs = [load_run(d) for d in directories]  # first: a missing run is the error, not its output path
    target_path = check_output_path(output, "output")

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    use_steps = any(any(row.get("env_steps") for row in rows) for _, rows, _ in runs)
    x2_key, x2_label = ("env_steps", "environment steps") if use_steps else ("wall_time", "wall time (s)")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.6 + 0.2 * len(runs)), dpi=100, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    targets = set()
    for index, (label, rows, config) in enumerate(runs):
        color = colors[index % len(colors)]
        targets.add(config.get("target"))
        for axis, key in ((axes[0], "generation"), (axes[1], x2_key)):
            x = _series(rows, key)
            mean, low, high = (_series(rows, k) for k in ("reward_mean", "reward_min", "reward_max"))
            axis.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
            axis.plot(x, mean, color=color, linewidth=1.6, label=f"{label}: population mean (min-max band)")
            tested = [
                (xi, row["test_reward"]) for xi, row in zip(x, rows, strict=True) if row.get("test_reward") is not None
            ]
            if tested:
                tx, ty = zip(*tested, strict=True)
                axis.plot(
                    tx,
                    ty,
                    color=color,
                    linestyle="--",
                    marker="o",
                    markersize=2.5,
                    linewidth=1.0,
                    label=f"{label}: greedy test of the center",
                )
    targets.discard(None)
    target = float(targets.pop()) if len(targets) == 1 else None
    for axis, xlabel in ((axes[0], "generation"), (axes[1], x2_label)):
        axis.set_xlabel(xlabel)
        axis.grid(True, alpha=0.3)
        if target is not None:
            axis.axhline(target, color="black", linestyle=":", linewidth=1.0, label=f"target {target:g}")
    axes[0].set_ylabel("episode return" if use_steps else "reward")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    rows = math.ceil(len(labels) / 2)
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title is None:
        title = "Learning curves" if len(runs) > 1 else runs[0][0]
    figure.suptitle(title)
    figure.tight_layout(rect=(0, min(0.45, 0.045 * rows + 0.02), 1, 1))

    def write(file: Any) -> None:
        figure.savefig(file, format="png")

    try:
        return atomic_write(target_path, write)
    finally:
        plt.close(figure)
