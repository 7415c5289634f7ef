"""The ``pytorch-es`` command: train, evaluate, watch and plot Gymnasium agents.

::

    pytorch-es train CartPole-v1                      # tuned defaults, stops at the env's threshold
    pytorch-es train LunarLander-v3 --out runs/ll --tensorboard
    pytorch-es train --resume runs/ll                 # continue after a crash or Ctrl-C
    pytorch-es eval runs/ll --episodes 100 --seed 1000 --json
    pytorch-es play runs/ll --gif lander.gif
    pytorch-es plot runs/a runs/b -o curves.png

Bad input (unknown env id, bad option values, missing or corrupted files) is reported
as one line on stderr with a non-zero exit status, never a traceback. ``--help`` and
usage errors need argparse only: torch (seconds to import) is imported after them.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_TARGET_MISSED = 3  # training ended (generation budget) without reaching --target

# for --help; the registry decides
ALGOS = ("openai-es", "pgpe", "snes", "xnes", "cma-es", "sep-cma-es", "ipop-cma-es", "bipop-cma-es", "cem", "ars")
# Settings that define a run: a checkpoint only continues a run made with the same ones.
IDENTITY_KEYS = (
    "env_id",
    "algo",
    "population",
    "sigma",
    "lr",
    "optimizer",
    "fitness_shaping",
    "hidden",
    "activation",
    "episodes",
    "max_steps",
    "obs_norm",
    "reward_shift",
    "seed",
    "test_every",
    "test_episodes",
)
# Identity settings added after the first release: the value a run made before them had.
IDENTITY_DEFAULTS = {"reward_shift": 0.0}
# Settings a resumed run may change.
MUTABLE_KEYS = (
    "generations",
    "target",
    "workers",
    "backend",
    "ray_address",
    "timeout",
    "checkpoint_every",
    "tensorboard",
    "vector",
    "device",
)
# Backends whose evaluation runs in this process: a task cannot be killed, so --timeout does not apply.
UNKILLABLE_BACKENDS = ("serial", "threads")
TEST_SEED_TAG = 0x7E57
SCREEN_EPISODES = 10
MUJOCO_FRAME = 480  # MuJoCo envs' default render size (pixels a side)


class _Terminated(BaseException):
    """SIGTERM outside the training loop (which handles it itself): unwinds, closing workers."""


class CLIError(Exception):
    """A user error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- parsing
def _positive_int(minimum: int = 1, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum} (2^63 - 1), got {value}")
        return value

    return parse


def _positive_float(allow_zero: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value

    return parse


def _timeout(text: str) -> float | str:
    if text.lower() in ("none", "off"):
        return "none"
    return _positive_float()(text)


def _target(text: str) -> float | str:
    if text.lower() in ("none", "off"):
        return "none"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'none', got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError("must not be NaN")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def _algo(text: str) -> str:
    """A registered strategy name (one line with close names otherwise)."""
    from pytorch_es.strategies import registry

    try:
        registry.get(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text.lower()


def _hidden(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "linear"):
        return []  # no hidden layer: a linear policy
    sizes = []
    for part in text.replace(",", " ").split():
        try:
            size = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes layer sizes like '64' or '64,64', got {text!r}") from None
        if size < 1:
            raise argparse.ArgumentTypeError(f"layer sizes must be >= 1, got {size}")
        sizes.append(size)
    return sizes


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``pytorch-es train: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from pytorch_es import __version__

    parser = _Parser(
        prog="pytorch-es",
        description="Train PyTorch policies on Gymnasium envs with evolution strategies.",
    )
    parser.add_argument("--version", action="version", version=f"pytorch-es {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train a policy (defaults tuned per env)",
        description="Train an MLP policy with an evolution strategy (--algo; default OpenAI-ES). "
        "Options left out take the env's tuned defaults "
        "(pytorch_es.rl.defaults); the run stops at --generations or when a greedy test of the "
        "center reaches --target.",
    )
    train.add_argument("env_id", nargs="?", help="Gymnasium env id, e.g. CartPole-v1 (optional with --resume)")
    train.add_argument("--algo", type=_algo, default=None, help=f"strategy: {', '.join(ALGOS)} (default openai-es)")
    train.add_argument("--population", type=_positive_int(2), help="members per generation")
    train.add_argument("--sigma", type=_positive_float(), help="perturbation scale")
    train.add_argument("--lr", type=_positive_float(), help="learning rate")
    train.add_argument("--optimizer", choices=("sgd", "adam", "adamw", "clipup"), help="optimizer of the center")
    train.add_argument(
        "--fitness-shaping", choices=("centered_ranks", "z_score", "raw", "nes"), help="rewards -> utilities"
    )
    train.add_argument("--generations", type=_positive_int(0), help="generation budget (total)")
    train.add_argument("--episodes", type=_positive_int(), help="episodes per member per generation")
    train.add_argument("--max-steps", type=_positive_int(), help="step limit per training episode")
    train.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 64 or 64,64; none for a linear policy")
    train.add_argument("--activation", help="hidden activation (tanh, relu, ...)")
    train.add_argument(
        "--obs-norm", action=argparse.BooleanOptionalAction, default=None, help="observation normalisation"
    )
    train.add_argument(
        "--reward-shift", type=_finite_float, metavar="X",
        help="subtract X from every step's reward in training episodes only (ARS's survival-bonus removal: "
        "1 for Hopper, Walker2d, Ant; 5 for Humanoid); tests, eval and reported returns use the true reward",
    )
    train.add_argument("--seed", type=_positive_int(0, (1 << 63) - 1), help="run seed (default: random, recorded)")
    train.add_argument(
        "--target",
        type=_target,
        help="stop when the greedy test mean reaches this (default: env threshold; none)",
    )
    train.add_argument("--test-every", type=_positive_int(), help="test period in generations")
    train.add_argument("--test-episodes", type=_positive_int(), help="episodes of a greedy test")
    train.add_argument("--backend", choices=("auto", "serial", "threads", "processes", "ray"), help="where members run")
    train.add_argument(
        "--vector",
        choices=("gymnasium", "torch", "envpool"),
        help="envs: Gymnasium's (default), torch-native ones, the whole generation on --device "
        "(CartPole-v1, Acrobot-v1, Pendulum-v1, MountainCar-v0, MountainCarContinuous-v0), or EnvPool's C++ "
        "envs (pip install \"pytorch-es[envpool]\"; EnvPool's physics: scores comparable, not bit-identical)",
    )
    train.add_argument("--device", help="where the noise, the update (and with --vector torch the rollouts) run: "
                       "cpu (default), cuda or cuda:N")
    train.add_argument("--workers", type=_positive_int(), help="worker processes / actors")
    train.add_argument("--ray-address", help="address of a running Ray cluster (HOST:PORT)")
    train.add_argument(
        "--ray-allow-network",
        action="store_true",
        help="start a local Ray even though its servers listen on all interfaces (Ray 2.60 cannot bind them "
        "to loopback; see docs/cluster.md, Security)",
    )
    train.add_argument(
        "--timeout",
        type=_timeout,
        metavar="SECONDS",
        help="seconds one task (a chunk of members) may run on a worker before the worker is treated "
        "as dead: killed, replaced and the chunk re-run (processes and ray backends; default: no limit; "
        "none clears it on --resume)",
    )
    train.add_argument("--out", help="run directory (default runs/ENV_ID-TIMESTAMP)")
    train.add_argument(
        "--checkpoint-every",
        type=_positive_int(0),
        help="checkpoint period (0: at exit only)",
    )
    train.add_argument("--resume", metavar="DIR", help="continue the run in DIR (or from a checkpoint file)")
    train.add_argument("--tensorboard", action="store_true", default=None, help="also write TensorBoard events")
    train.add_argument("--quiet", action="store_true", help="no progress display (summary still printed)")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "eval",
        help="greedy evaluation of a trained policy",
        description="Greedy returns on env seeds SEED..SEED+N-1.",
    )
    evaluate.add_argument("dir", metavar="DIR", help="run directory")
    evaluate.add_argument("--episodes", type=_positive_int(), default=100)
    evaluate.add_argument("--seed", type=_positive_int(0), default=1000)
    evaluate.add_argument("--json", action="store_true", help="print one JSON line")
    evaluate.set_defaults(func=cmd_eval)

    play = commands.add_parser("play", help="watch a trained policy, or record it as a GIF")
    play.add_argument("dir", metavar="DIR", help="run directory")
    play.add_argument("--render", action="store_true", help="show the env in a window")
    play.add_argument("--gif", metavar="FILE", help="record the episodes into an animated GIF")
    play.add_argument("--episodes", type=_positive_int(), default=1)
    play.add_argument("--seed", type=_positive_int(0), default=1000, help="env seed of the first episode")
    play.add_argument("--max-steps", type=_positive_int(), help="stop each episode after this many steps")
    play.add_argument("--frame-skip", type=_positive_int(), default=2, help="GIF: keep every Nth frame")
    play.add_argument("--scale", type=_positive_float(), default=0.5, help="GIF: frame size factor")
    play.add_argument("--fps", type=_positive_float(), default=25.0, help="GIF frame rate")
    play.set_defaults(func=cmd_play)

    plot = commands.add_parser("plot", help="learning curves of runs as a PNG")
    plot.add_argument("dirs", metavar="DIR", nargs="+", help="run directories (overlaid)")
    plot.add_argument("-o", "--output", metavar="FILE.png", help="default DIR/learning_curve.png (one run)")
    plot.add_argument("--title")
    plot.set_defaults(func=cmd_plot)
    return parser


# ---------------------------------------------------------------------------- usage
def _check_timeout_backend(timeout: Any, backend: str | None) -> None:
    if isinstance(timeout, (int, float)) and backend in UNKILLABLE_BACKENDS:
        raise CLIError(
            f"--timeout applies to --backend processes and ray: a {backend} evaluation runs in this "
            "process and cannot be killed",
            EXIT_USAGE,
        )


def _check_vector_shift(vector: str | None, shift: float | None) -> None:
    if vector == "torch" and shift:
        raise CLIError("--reward-shift applies to --vector gymnasium and envpool (the torch envs pay no "
                       "survival bonus)", EXIT_USAGE)


def _check_vector_backend(vector: str | None, backend: str | None) -> None:
    if vector == "torch" and backend not in (None, "auto", "serial"):
        raise CLIError(
            f"--vector torch evaluates the whole population in this process, on --device; "
            f"--backend {backend} does not apply (use auto or serial)",
            EXIT_USAGE,
        )


def check_usage(args: argparse.Namespace) -> None:
    """Usage errors that argparse cannot see, found before anything heavy is imported."""
    if args.command == "train":
        if not args.env_id and not args.resume:
            raise CLIError("train needs an ENV_ID (or --resume DIR)", EXIT_USAGE)
        _check_timeout_backend(args.timeout, args.backend)
        _check_vector_backend(args.vector, args.backend)
        _check_vector_shift(args.vector, args.reward_shift)
    elif args.command == "play" and args.render and args.gif:
        raise CLIError("--render and --gif cannot be combined: a window gives no frames to record", EXIT_USAGE)


# ---------------------------------------------------------------------------- train
def _default_out(env_id: str) -> Path:
    """``runs/ENV_ID-YYYYmmdd-HHMMSS`` (``-2``, ``-3``, ... if that exists already)."""
    base = Path("runs") / f"{env_id.replace('/', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, count = base, 1
    while path.exists():
        count += 1
        path = base.with_name(f"{base.name}-{count}")
    return path


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings given on the command line (None = not given)."""
    keys = (*IDENTITY_KEYS, *MUTABLE_KEYS)
    values = {key: getattr(args, key, None) for key in keys}
    values["env_id"] = args.env_id
    return {k: v for k, v in values.items() if v is not None}


def _new_config(args: argparse.Namespace) -> dict[str, Any]:
    from pytorch_es.rl import check_env_id, reward_threshold
    from pytorch_es.rl.algo_defaults import get_algo_defaults
    from pytorch_es.strategies.openai_es import new_seed

    env_id = check_env_id(args.env_id)
    algo = args.algo or "openai-es"
    defaults = get_algo_defaults(env_id, algo)
    for option, key in (("--optimizer", "optimizer"), ("--fitness-shaping", "fitness_shaping")):
        if getattr(args, key) is not None and getattr(defaults, key) is None:
            raise CLIError(f"{option} does not apply to --algo {algo}")
    target = args.target if args.target is not None else defaults.target
    if target is None:
        target = reward_threshold(env_id)
    config = {
        "env_id": env_id,
        "algo": algo,
        "population": args.population or defaults.population,
        "sigma": args.sigma or defaults.sigma,
        "lr": args.lr or defaults.lr,
        "optimizer": args.optimizer or defaults.optimizer,
        "fitness_shaping": args.fitness_shaping or defaults.fitness_shaping,
        "hidden": list(args.hidden) if args.hidden is not None else list(defaults.hidden),
        "activation": args.activation or defaults.activation,
        "episodes": args.episodes or defaults.episodes,
        "max_steps": args.max_steps if args.max_steps is not None else defaults.max_steps,
        "obs_norm": defaults.obs_norm if args.obs_norm is None else args.obs_norm,
        "reward_shift": args.reward_shift if args.reward_shift is not None else 0.0,
        "seed": args.seed if args.seed is not None else new_seed() % (1 << 31),
        "test_every": args.test_every or 1,
        "test_episodes": args.test_episodes or defaults.test_episodes,
        "generations": args.generations if args.generations is not None else defaults.generations,
        "target": None if target == "none" else target,
        "workers": args.workers,
        "backend": args.backend or "auto",
        "ray_address": args.ray_address,
        "timeout": None if args.timeout in (None, "none") else args.timeout,
        "checkpoint_every": 10 if args.checkpoint_every is None else args.checkpoint_every,
        "tensorboard": bool(args.tensorboard),
        "vector": args.vector or "gymnasium",
        "device": args.device or "cpu",
    }
    return config


def _resume_paths(resume: str) -> tuple[Path, Path]:
    """(run directory, checkpoint file) of ``--resume DIR`` or ``--resume FILE``."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME

    path = Path(resume)
    if path.is_dir():
        return path, path / CHECKPOINT_NAME
    if path.is_file():
        return path.parent, path
    raise CLIError(f"--resume {resume!r}: no such run directory or checkpoint file")


def _load_resume(args: argparse.Namespace) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(run directory, merged config, trainer state) for ``--resume``."""
    from pytorch_es.training.checkpoint import CheckpointError, config_differences, load_checkpoint
    from pytorch_es.training.rundir import CONFIG_NAME, RunDirectoryError, read_json

    directory, checkpoint = _resume_paths(args.resume)
    if args.out is not None and Path(args.out).resolve() != directory.resolve():
        raise CLIError(
            f"--out {args.out!r} conflicts with --resume {args.resume!r}: a resumed run stays in its directory"
        )
    try:
        payload = load_checkpoint(checkpoint)
    except CheckpointError as error:
        message = str(error)
        if error.previous is not None:
            message += (
                f"; the previous checkpoint {str(error.previous)!r} (generation {error.previous_generation}) "
                f"is intact: resume from it with: pytorch-es train --resume {error.previous}"
            )
        raise CLIError(message) from None
    saved = {**IDENTITY_DEFAULTS, **payload["config"]}
    if not saved.get("env_id"):
        raise CLIError(f"checkpoint {str(checkpoint)!r} was not written by pytorch-es train (no env_id in its config)")
    config_path = directory / CONFIG_NAME
    if config_path.is_file():
        try:
            on_disk = {**IDENTITY_DEFAULTS, **read_json(config_path)}
        except RunDirectoryError as error:
            raise CLIError(str(error)) from None
        differences = config_differences(on_disk, saved, IDENTITY_KEYS)
        if differences:
            raise CLIError(
                f"checkpoint {str(checkpoint)!r} is from another run than {str(config_path)!r}: "
                + "; ".join(
                    d.replace("checkpoint has", "config.json has").replace("this run has", "checkpoint has")
                    for d in differences
                )
            )
    explicit = _explicit(args)
    differences = config_differences(
        saved, {**saved, **{k: v for k, v in explicit.items() if k in IDENTITY_KEYS}}, IDENTITY_KEYS
    )
    if differences:
        raise CLIError(
            f"checkpoint {str(checkpoint)!r} was made with other settings than this command: "
            + "; ".join(differences)
            + " (a resumed run keeps its settings; only "
            + ", ".join("--" + k.replace("_", "-") for k in MUTABLE_KEYS)
            + " may change)"
        )
    config = dict(saved)
    config.setdefault("timeout", None)  # checkpoints written before --timeout existed
    config.setdefault("vector", "gymnasium")  # ... and before --vector / --device
    config.setdefault("device", "cpu")
    for key in MUTABLE_KEYS:
        if key in explicit:
            config[key] = None if explicit[key] == "none" else explicit[key]
    # settings of the run that do not apply to the backend asked for now are dropped
    if explicit.get("backend") in UNKILLABLE_BACKENDS and "timeout" not in explicit:
        config["timeout"] = None
    if explicit.get("backend") == "serial" and "workers" not in explicit:
        config["workers"] = None
    if explicit.get("backend") not in (None, "auto", "ray") and "ray_address" not in explicit:
        config["ray_address"] = None
    return directory, config, payload["state"]


def _make_problem(config: dict[str, Any]) -> Any:
    """``GymProblem`` (``--vector gymnasium``) or ``TorchEnvProblem`` on ``--device`` (``torch``)."""
    from pytorch_es.rl import GymProblem
    from pytorch_es.rl.torch_problem import TorchEnvProblem, check_device

    check_device(config["device"])  # one line for cuda without CUDA, on either path
    kwargs = {
        "episodes_per_member": config["episodes"],
        "max_steps": config["max_steps"],
        "obs_norm": config["obs_norm"],
    }
    policy = {"hidden": tuple(config["hidden"]), "activation": config["activation"]}
    if config["vector"] == "torch":
        return TorchEnvProblem(config["env_id"], policy, device=config["device"], **kwargs)
    vectorization = "envpool" if config["vector"] == "envpool" else "auto"
    return GymProblem(config["env_id"], policy, vectorization=vectorization,
                      reward_shift=config.get("reward_shift", 0.0), **kwargs)


def _make_strategy(config: dict[str, Any], center: Any) -> Any:
    from pytorch_es.strategies import get

    kwargs = {"population_size": config["population"], "sigma": config["sigma"], "lr": config["lr"],
              "seed": config["seed"]}
    for key in ("optimizer", "fitness_shaping"):
        if config.get(key) is not None:
            kwargs[key] = config[key]
    return get(config.get("algo") or "openai-es")(center, **kwargs)


def _make_test(problem: Any, config: dict[str, Any]):
    """Greedy test of the center: a screen of 10 episodes, completed to ``test_episodes``
    only when the screen reaches the target. Seeds depend only on the run seed."""
    import torch

    from pytorch_es.core.noise import mix_seed

    episodes = config["test_episodes"]
    screen = min(SCREEN_EPISODES, episodes)
    start = mix_seed(config["seed"], TEST_SEED_TAG) % ((1 << 31) - episodes)
    target = config["target"]

    def test(center: torch.Tensor) -> float:
        returns = problem.evaluate_policy(center, episodes=screen, seed=start)
        if episodes > screen and (target is None or float(returns.mean()) >= target):
            rest = problem.evaluate_policy(center, episodes=episodes - screen, seed=start + screen)
            returns = torch.cat([returns, rest])
        return float(returns.mean())

    return test


def _versions() -> dict[str, str]:
    import gymnasium
    import torch

    from pytorch_es import __version__

    return {
        "pytorch_es": __version__,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "python": platform.python_version(),
    }


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def _signal_after_training(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM once training has ended: the report and the closing of the workers
    finish (the run has saved what it will save; a signal storm must not cut its report)."""


def cmd_train(args: argparse.Namespace) -> int:
    """``pytorch-es train``. SIGTERM is handled by ``Trainer.run`` while training (abandon
    the generation, save, exit 143); before it, it unwinds like an error, so the workers
    started so far are closed; after it, the report and the closing finish."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    previous_sigint = signal.getsignal(signal.SIGINT) if in_main_thread else None
    try:
        with contextlib.ExitStack() as resources:  # the run directory's lock, released last
            args.resources = resources
            return _train(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)


def _train(args: argparse.Namespace) -> int:
    from pytorch_es.evaluation import make_evaluator, resolve_backend
    from pytorch_es.training import (
        CheckpointCallback,
        MetricsCSV,
        ProgressCallback,
        TensorBoardLogger,
        Trainer,
    )
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME
    from pytorch_es.training.progress import SlowGenerationHint
    from pytorch_es.training.rundir import CONFIG_NAME, TENSORBOARD_DIR, PolicySaver, write_json

    state = None
    if args.resume:
        _hold_run_directory(args, _resume_paths(args.resume)[0], created=False)  # before reading the checkpoint
        directory, config, state = _load_resume(args)
    else:
        config = _new_config(args)
        directory = Path(args.out) if args.out else _default_out(config["env_id"])
        if (directory / CHECKPOINT_NAME).exists():
            raise CLIError(
                f"--out {str(directory)!r} already holds a run; continue it with "
                f"pytorch-es train --resume {directory}, or choose another --out"
            )
        if directory.exists() and not directory.is_dir():
            raise CLIError(f"--out {str(directory)!r} exists and is not a directory")
        created = not directory.exists()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CLIError(f"cannot create --out {str(directory)!r}: {error.strerror or error}") from None
        _hold_run_directory(args, directory, created=created)
        if (directory / CHECKPOINT_NAME).exists():  # written by a run that ended while this one started
            raise CLIError(
                f"--out {str(directory)!r} already holds a run; continue it with "
                f"pytorch-es train --resume {directory}, or choose another --out"
            )
    if not os.access(directory, os.W_OK):
        raise CLIError(f"run directory {str(directory)!r} is not writable")
    _check_timeout_backend(config["timeout"], config["backend"])  # a resumed run's backend
    _check_vector_backend(config["vector"], config["backend"])
    _check_vector_shift(config["vector"], config.get("reward_shift"))

    problem = _make_problem(config)
    _warn_if_pixels(problem)
    try:
        _check_run_costs(config, problem.policy.num_parameters)
    except BaseException:
        problem.close()
        raise
    strategy = _make_strategy(config, problem.initial_center(config["seed"]).to(config["device"]))
    try:
        choice = resolve_backend(config["backend"], config["workers"], config.get("ray_address"), problem)
        evaluator = make_evaluator(
            config["backend"], config["workers"], config.get("ray_address"), config["timeout"], problem=problem,
            choice=choice, **_ray_options(args, config),
        )
    except BaseException:
        problem.close()
        raise
    try:
        callbacks: list[Any] = []
        if not args.quiet:
            callbacks.append(ProgressCallback())
            if choice.backend == "serial":
                callbacks.append(SlowGenerationHint(_workers_hint))
        callbacks.append(MetricsCSV(directory / "metrics.csv"))
        if config["tensorboard"]:
            callbacks.append(TensorBoardLogger(directory / TENSORBOARD_DIR))
        callbacks.append(PolicySaver(directory, problem, seed=config["seed"]))
        checkpointer = CheckpointCallback(directory, config, every=config["checkpoint_every"])
        callbacks.append(checkpointer)
        trainer = Trainer(
            strategy,
            problem,
            evaluator,
            test=_make_test(problem, config),
            test_every=config["test_every"],
            target=config["target"],
            callbacks=callbacks,
        )
        if state is not None:
            from pytorch_es.training.checkpoint import shape_mismatches

            mismatches = shape_mismatches(state, problem.policy.num_parameters)
            if mismatches:
                raise CLIError(f"checkpoint in {str(directory)!r} does not fit this run: " + "; ".join(mismatches))
            try:
                trainer.load_state_dict(state)
            except (KeyError, ValueError, TypeError, RuntimeError) as error:
                raise CLIError(
                    f"checkpoint in {str(directory)!r} does not fit this run: {str(error).splitlines()[0]}"
                ) from None
        write_json(
            directory / CONFIG_NAME,
            {**config, "versions": _versions(), "command": ["pytorch-es", *sys.argv[1:]]},
        )
        where = f"resuming at generation {trainer.generation}" if state is not None else "starting"
        if not args.quiet:
            print(
                f"{config['env_id']}: {where}; {problem.policy.describe()}, "
                f"population {config['population']}, seed {config['seed']}, target {config['target']}, "
                + (f"reward shift {config['reward_shift']:g} (training only), " if config.get("reward_shift") else "")
                + f"{_describe(evaluator, config['timeout'])} ({config['backend']}: {choice.reason}); "
                f"run directory {directory}",
                flush=True,
            )
        last = trainer.metrics[-1]["test_reward"] if trainer.metrics else None
        if config["target"] is not None and last is not None and last >= config["target"]:
            print(
                f"{config['env_id']}: the run in {directory} already reached the target "
                f"({last:.2f} >= {config['target']:g} at generation {trainer.generation}); "
                "to train on, resume with a higher --target or --target none"
            )
            return 0
        if trainer.generation < config["generations"] and callable(getattr(evaluator, "start", None)):
            evaluator.start()  # worker start-up (a second or more) out of the first timed generation
        first_generation = trainer.generation
        if threading.current_thread() is threading.main_thread():
            # Trainer.run handles SIGINT and SIGTERM while it runs and restores these on return:
            # from then on the run has ended and its report is next (cmd_train restores both)
            signal.signal(signal.SIGINT, _signal_after_training)
            signal.signal(signal.SIGTERM, _signal_after_training)
        result = trainer.run(config["generations"])
        # reported before closing: a 2nd SIGTERM while the workers stop still finds it printed
        return _report(
            result, config, directory, trained=result.generation > first_generation, saved=checkpointer.saved_generation
        )
    finally:
        evaluator.close()
        problem.close()


MAX_TEST_EPISODES = 1 << 30  # test episodes take env seeds from a 31-bit range


def _check_run_costs(config: dict[str, Any], num_parameters: int) -> None:
    """Fail before allocating when a generation's batch or the test's cannot fit in memory
    (lower bounds: the members' parameters and about 1 KiB per sub-env)."""
    from pytorch_es.limits import batch_bytes, check_memory

    if config["test_episodes"] > MAX_TEST_EPISODES:
        raise CLIError(f"--test-episodes must be at most {MAX_TEST_EPISODES:,} (env seeds are 31-bit), "
                       f"got {config['test_episodes']:,}")
    population, episodes = config["population"], config["episodes"]
    if config.get("vector") != "torch":  # TorchEnvProblem checks its device's memory itself
        check_memory(
            batch_bytes(population * episodes, num_parameters),
            f"--population {population:,} x --episodes {episodes:,} ({population * episodes:,} sub-envs per "
            f"generation, {num_parameters:,} parameters each)",
            "use a smaller --population or fewer --episodes",
        )
    check_memory(
        batch_bytes(config["test_episodes"], num_parameters),
        f"--test-episodes {config['test_episodes']:,} (one batch of that many sub-envs)",
        "use fewer --test-episodes",
    )


def _hold_run_directory(args: argparse.Namespace, directory: Path, created: bool) -> None:
    """One run per directory: its lock for the rest of the command (a second train or
    resume fails at once, naming the holder's PID), stale temporary files of a killed
    run removed, and a directory this command created removed again if the run fails
    before writing anything into it."""
    from pytorch_es.training.rundir import (
        RunDirectoryError,
        RunDirectoryLock,
        remove_if_empty,
        remove_stale_temporaries,
    )

    resources = getattr(args, "resources", None)
    try:
        lock = RunDirectoryLock(directory).acquire()
    except RunDirectoryError as error:  # the directory is the holder's: leave it alone
        raise CLIError(str(error)) from None
    if resources is not None:
        resources.callback(lock.release)
        if created:
            resources.callback(remove_if_empty, directory)  # runs first: the lock is still held
    remove_stale_temporaries(directory)


def _ray_options(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """``--ray-allow-network``: passed to a Ray backend only (never saved: asked for each time)."""
    if getattr(args, "ray_allow_network", False) and (config["backend"] == "ray" or config.get("ray_address")):
        return {"allow_network": True}
    return {}


def _warn_if_pixels(problem: Any) -> None:
    from pytorch_es.rl.envs import is_pixel_space

    space = problem.observation_space
    if is_pixel_space(space):
        print(
            f"warning: {problem.env_id} observes pixels {tuple(space.shape)}: {int(space.low.size):,} inputs "
            f"give the policy {problem.policy.num_parameters:,} parameters, and ES on raw frames is slow to "
            "learn; give it features with an observation wrapper, or use a smaller --hidden",
            file=sys.stderr,
            flush=True,
        )


def _workers_hint(seconds: float) -> str | None:
    from pytorch_es.evaluation.factory import available_cores

    cores = available_cores()
    if cores < 2:
        return None
    return (
        f"hint: a generation takes {seconds:.0f} s in this one process; --workers {cores} runs members "
        f"on {cores} worker processes (--backend ray for a cluster)"
    )


def _describe(evaluator: Any, timeout: float | None = None) -> str:
    workers = getattr(evaluator, "workers", None) or getattr(evaluator, "threads", None)
    name = type(evaluator).__name__.replace("Evaluator", "").lower() or "custom"
    text = f"{name} evaluation" + (f" on {workers} workers" if isinstance(workers, int) else "")
    if timeout is not None:  # --backend auto may have picked an in-process backend
        used = getattr(evaluator, "timeout", None) is not None
        text += f", timeout {timeout:g} s per task" if used else f" (--timeout {timeout:g} unused: runs in-process)"
    return text


def _checkpoint_note(directory: Path, generation: int, saved: int | None) -> tuple[str, bool]:
    """What the run directory holds now, as said in the report, and whether it can be resumed."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME, checkpoint_generation

    path = directory / CHECKPOINT_NAME
    if saved is not None and saved == generation:
        return f"checkpoint saved in {path}", True
    on_disk = checkpoint_generation(path)
    if on_disk is None:
        return "no checkpoint was written", False
    return f"NOT saved: the checkpoint in {path} is the one of generation {on_disk}", True


def _report(result: Any, config: dict[str, Any], directory: Path, trained: bool, saved: int | None = None) -> int:
    """Print the outcome; the exit status is EXIT_TARGET_MISSED when this call trained
    through its generation budget without reaching the target. ``saved``: the generation
    of the checkpoint this process wrote last (the report says only what was written)."""
    steps = f"{result.env_steps:,} env steps"
    best = "-" if result.best_test_reward is None else f"{result.best_test_reward:.2f}"
    if result.reason in ("interrupted", "terminated"):
        what = "Interrupted" if result.reason == "interrupted" else "Terminated (SIGTERM)"
        note, resumable = _checkpoint_note(directory, result.generation, saved)
        print(
            f"{what} at generation {result.generation} ({result.elapsed:.1f} s, {steps}); {note}."
            + (f"\nResume with: pytorch-es train --resume {directory}" if resumable else ""),
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED if result.reason == "interrupted" else EXIT_TERMINATED
    if result.reason == "target":
        print(
            f"Solved {config['env_id']} at generation {result.generation}: test mean {best} >= "
            f"{config['target']:g} ({config['test_episodes']} episodes) "
            f"in {result.elapsed:.1f} s, {steps}."
        )
    else:
        print(
            f"Stopped after {result.generation} generations ({result.elapsed:.1f} s, {steps}); "
            f"best test mean {best} at generation {result.best_generation}."
        )
    print(f"Run directory: {directory}  (pytorch-es eval {directory}; pytorch-es play {directory} --gif out.gif)")
    if trained and result.reason != "target" and config["target"] is not None:
        print(
            f"pytorch-es train: target {config['target']:g} not reached in {result.generation} generations "
            f"(best test mean {best}); try more generations (pytorch-es train --resume {directory} "
            f"--generations {2 * max(result.generation, 1)}), a larger --population or --episodes, "
            f"or another --seed",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_TARGET_MISSED
    return 0


# ----------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from pytorch_es.training.rundir import load_policy

    loaded = load_policy(args.dir)
    returns = loaded.evaluate(episodes=args.episodes, seed=args.seed)
    mean = float(returns.mean())
    std = float(returns.std(unbiased=False)) if len(returns) > 1 else 0.0
    if args.json:
        print(json.dumps({"env_id": loaded.env_id, "episodes": args.episodes, "mean_return": mean, "std_return": std}))
    else:
        print(
            f"{loaded.env_id}: mean return {mean:.2f} ± {std:.2f} over {args.episodes} episodes "
            f"(env seeds {args.seed}..{args.seed + args.episodes - 1}); min {float(returns.min()):.2f}, "
            f"max {float(returns.max()):.2f}"
        )
    return 0


# ----------------------------------------------------------------------------- play
def _check_gif_path(text: str) -> Path:
    from pytorch_es.io import check_output_path

    try:
        path = check_output_path(text, "--gif")
    except (FileNotFoundError, IsADirectoryError, TypeError) as error:
        raise CLIError(f"cannot write the GIF: {error}") from None
    if path.suffix.lower() != ".gif":
        raise CLIError(f"--gif {text!r} must end in .gif")
    parent = path.parent if str(path.parent) else Path(".")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CLIError(f"cannot write the GIF: --gif {text!r}: permission denied")
    return path


def _gif_frame(frame: Any, scale: float) -> Any:
    """An ``rgb_array`` frame scaled by ``scale`` and quantised to a 64-colour palette."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame))
    factor = 1.0 / scale
    if scale < 1.0 and abs(factor - round(factor)) < 1e-9:
        image = image.reduce(round(factor))  # box filter: fast and sharp enough
    elif scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image.quantize(colors=64, method=Image.Quantize.FASTOCTREE)


def cmd_play(args: argparse.Namespace) -> int:
    from pytorch_es.rl import make_env
    from pytorch_es.rl.envs import is_mujoco
    from pytorch_es.training.rundir import load_policy

    gif = _check_gif_path(args.gif) if args.gif else None
    if not args.render:
        # MuJoCo renders headless through EGL (Mesa's llvmpipe without a GPU); read when
        # mujoco is first imported, so set before the policy's env is made
        os.environ.setdefault("MUJOCO_GL", "egl")
    loaded = load_policy(args.dir)
    # pygame: no sound is needed, and without --render no display either (and no SDL warnings).
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if not args.render:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    frames: list[Any] = []
    render_mode = "human" if args.render else ("rgb_array" if gif is not None else None)
    env_kwargs = loaded.config.get("env_kwargs") or None
    scale = args.scale
    if gif is not None and is_mujoco(loaded.env_id):
        # rendered at the GIF's size (480 px scaled): a software-rendered frame costs its pixels
        size = max(16, round(MUJOCO_FRAME * scale))
        env_kwargs = {"width": size, "height": size, **(env_kwargs or {})}
        scale = 1.0
    try:
        env = make_env(loaded.env_id, render_mode=render_mode, env_kwargs=env_kwargs)
    except Exception as error:  # pygame / display errors
        if args.render:
            raise CLIError(
                f"cannot open a window for {loaded.env_id} ({type(error).__name__}: {error}); "
                "without a display, record a GIF with --gif FILE"
            ) from None
        raise
    step = 0

    def record(env: Any, obs: Any, reward: float) -> None:
        nonlocal step
        step += 1
        if step % args.frame_skip == 0:
            frames.append(_gif_frame(env.render(), scale))

    try:
        for episode in range(args.episodes):
            seed = args.seed + episode
            if gif is not None:  # the first frame, before any step
                step = 0
                env.reset(seed=seed)
                frames.append(_gif_frame(env.render(), scale))
            episode_return, steps = loaded.run_episode(
                env, seed=seed, max_steps=args.max_steps, on_step=record if gif is not None else None
            )
            print(f"episode {episode + 1}: return {episode_return:.2f} in {steps} steps (env seed {seed})")
    except Exception as error:
        if args.render:
            raise CLIError(
                f"rendering {loaded.env_id} failed ({type(error).__name__}: {error}); "
                "without a display, record a GIF with --gif FILE"
            ) from None
        raise
    finally:
        env.close()
    if gif is not None:
        _write_gif(gif, frames, args.fps)
        print(f"wrote {gif} ({len(frames)} frames, {gif.stat().st_size / 1024:.0f} KiB)")
    return 0


def _write_gif(path: Path, frames: list[Any], fps: float) -> None:
    """An endlessly looping GIF, written atomically (Pillow's GIF writer)."""
    from pytorch_es.io import atomic_write

    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000.0 / fps), loop=0)
    try:
        atomic_write(path, lambda file: file.write(buffer.getvalue()))
    except OSError as error:
        raise CLIError(f"cannot write the GIF {str(path)!r}: {error.strerror or error}") from None


# ----------------------------------------------------------------------------- plot
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


# ----------------------------------------------------------------------------- main
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
        check_usage(args)  # before importing torch: a usage error costs argparse only
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
        from pytorch_es.evaluation.base import MemberEvaluationError
        from pytorch_es.evaluation.pool import WorkerSetupError

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
    except _Terminated:  # SIGTERM before or after the training loop (which handles its own)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
