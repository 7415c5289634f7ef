"""``pytorch-es train``: a thin layer over :class:`pytorch_es.training.session.Run`.

Options become a config layer over the env's preset and ``--config FILE`` (see
:func:`pytorch_es.training.config.resolve_config`); the command prints the start line, the
progress and the outcome, and owns the exit status and the signals around the run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pytorch_es.cli import common
from pytorch_es.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TARGET_MISSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    CLIError,
    Terminated,
)

# for --help (the registry imports torch; tests/test_cli_algo.py keeps the two equal); the registry decides
ALGOS = ("openai-es", "pgpe", "snes", "xnes", "cma-es", "sep-cma-es", "ipop-cma-es", "bipop-cma-es", "cem", "ars",
         "cr-fm-nes", "ipop-cr-fm-nes")
RUN_KEYS = ("seed", "generations", "target", "test_every", "test_episodes", "checkpoint_every", "tensorboard", "out")
UNKILLABLE_BACKENDS = ("serial", "threads")


def add_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train a policy (defaults tuned per env)",
        description="Train an MLP policy with an evolution strategy (--algo; default OpenAI-ES). "
        "Settings come from, lowest first: the generic defaults, the env's preset (pytorch-es presets), "
        "--config FILE, and these options; --print-config shows the result. The run stops at "
        "--generations or when a greedy test of the center reaches --target.",
    )
    add = train.add_argument
    add("env_id", nargs="?", help="Gymnasium env id, e.g. CartPole-v1 (optional with --config, --preset or --resume)")
    add("--config", metavar="FILE", help="settings from a TOML file (or a run's config.json); options override it")
    add("--preset", metavar="NAME", help="start from this preset (default: the env's, if it has one)")
    add("--print-config", action="store_true", help="print the resolved config as TOML and exit without training")
    add("--algo", type=common.algo, default=None, help=f"strategy: {', '.join(ALGOS)} (default openai-es)")
    add("--population", type=common.positive_int(2), help="members per generation (strategy.population_size)")
    add("--sigma", type=common.positive_float(), help="perturbation scale")
    add("--lr", type=common.positive_float(), help="learning rate")
    add("--optimizer", choices=("sgd", "adam", "adamw", "clipup"), help="optimizer of the center")
    add("--fitness-shaping", choices=("centered_ranks", "z_score", "raw", "nes"), help="rewards -> utilities")
    add("--generations", type=common.positive_int(0), help="generation budget (total)")
    add("--episodes", type=common.positive_int(), help="episodes per member per generation")
    add("--max-steps", type=common.positive_int(), help="step limit per training episode")
    add("--hidden", type=common.hidden, help="hidden layer sizes, e.g. 64 or 64,64; none for a linear policy")
    add("--activation", help="hidden activation (tanh, relu, ...)")
    add("--obs-norm", action=argparse.BooleanOptionalAction, default=None, help="observation normalisation")
    add("--reward-shift", type=common.finite_float, metavar="X",
        help="subtract X from every step's reward in training episodes only (ARS's survival-bonus removal: "
        "1 for Hopper, Walker2d, Ant; 5 for Humanoid); tests, eval and reported returns use the true reward")
    add("--seed", type=common.positive_int(0, (1 << 63) - 1), help="run seed (default: random, recorded)")
    add("--target", type=common.target,
        help="stop when the greedy test mean reaches this (default: env threshold; none)")
    add("--test-every", type=common.positive_int(), help="test period in generations")
    add("--test-episodes", type=common.positive_int(), help="episodes of a greedy test")
    add("--backend", choices=("auto", "serial", "threads", "processes", "ray"), help="where members run")
    add("--vector", choices=("gymnasium", "torch", "envpool", "auto"),
        help="envs: Gymnasium's (default), torch-native ones, the whole generation on --device "
        "(CartPole-v1, Acrobot-v1, Pendulum-v1, MountainCar-v0, MountainCarContinuous-v0), EnvPool's C++ "
        "envs (pip install \"pytorch-es[envpool]\"; EnvPool's physics: scores comparable, not bit-identical), "
        "or auto: EnvPool where it is installed and has the env, else Gymnasium (the start line says which)")
    add("--device", help="where the noise, the update (and with --vector torch the rollouts) run: "
        "cpu (default), cuda or cuda:N")
    add("--workers", type=common.positive_int(), help="worker processes / actors")
    add("--ray-address", help="address of a running Ray cluster (HOST:PORT)")
    add("--ray-allow-network", action="store_true",
        help="start a local Ray even though its servers listen on all interfaces (Ray 2.60 cannot bind them "
        "to loopback; see docs/cluster.md, Security)")
    add("--timeout", type=common.timeout, metavar="SECONDS",
        help="seconds one task (a chunk of members) may run on a worker before the worker is treated "
        "as dead: killed, replaced and the chunk re-run (processes and ray backends; default: no limit; "
        "none clears it on --resume)")
    add("--out", help="run directory (default runs/ENV_ID-TIMESTAMP)")
    add("--checkpoint-every", type=common.positive_int(0), help="checkpoint period (0: at exit only)")
    add("--resume", metavar="DIR", help="continue the run in DIR (or from a checkpoint file)")
    add("--tensorboard", action="store_true", default=None, help="also write TensorBoard events")
    add("--quiet", action="store_true", help="no progress display (summary still printed)")
    add("--set", type=common.setting, action="append", default=[], metavar="KEY=VALUE", dest="settings",
        help="any config key (docs/config.md), e.g. --set strategy.top_directions=8 (a strategy's own "
        "keyword) or --set problem.max_steps=500; repeatable; the named options above win over it")
    train.set_defaults(func=cmd_train, check_usage=check_usage)


def option_keys() -> dict[str, str]:
    """Option (argparse dest) -> dotted TrainConfig key: the flat names of release 0.2's
    config, which were the options' names, and the run-level keys (imported after parsing:
    the config module needs torch)."""
    from pytorch_es.training.config import LEGACY_KEYS

    return {**LEGACY_KEYS, **{key: key for key in RUN_KEYS}}


def label(key: str) -> str:
    """The option that sets dotted config key ``key`` (``env_id`` for the positional)."""
    for dest, dotted in option_keys().items():
        if dotted == key:
            return "--" + dest.replace("_", "-")
    return key


def check_usage(args: argparse.Namespace) -> None:
    """Usage errors that argparse cannot see, found before anything heavy is imported."""
    if not args.env_id and not args.resume and not args.config and not args.preset:
        raise CLIError("train needs an ENV_ID (or --config FILE, --preset NAME or --resume DIR)", EXIT_USAGE)
    if args.resume and (args.config or args.preset or args.print_config):
        given = "--config" if args.config else "--preset" if args.preset else "--print-config"
        raise CLIError(f"{given} applies to a new run; a resumed run keeps its settings "
                       f"(they are in {args.resume}/config.json)", EXIT_USAGE)
    if isinstance(args.timeout, float) and args.backend in UNKILLABLE_BACKENDS:
        raise CLIError(f"--timeout applies to --backend processes and ray: a {args.backend} evaluation runs in this "
                       "process and cannot be killed", EXIT_USAGE)
    if args.vector == "torch" and args.backend not in (None, "auto", "serial"):
        raise CLIError(f"--vector torch evaluates the whole population in this process, on --device; "
                       f"--backend {args.backend} does not apply (use auto or serial)", EXIT_USAGE)
    if args.vector == "torch" and args.reward_shift:
        raise CLIError("--reward-shift applies to --vector gymnasium and envpool (the torch envs pay no "
                       "survival bonus)", EXIT_USAGE)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options and ``--set``, nested like a config (options not given are
    absent; a named option wins over ``--set`` of the same key)."""
    from pytorch_es.training.config import nest

    flat = dict(getattr(args, "settings", None) or [])
    given = {key: getattr(args, dest, None) for dest, key in option_keys().items()}
    given["env_id"] = args.env_id
    flat.update({key: value for key, value in given.items() if value is not None})
    return nest(flat)


# ---------------------------------------------------------------------- the command
def on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def signal_after_training(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM once training has ended: the report and the closing of the workers
    finish (the run has saved what it will save; a signal storm must not cut its report)."""


def cmd_train(args: argparse.Namespace) -> int:
    """``pytorch-es train``. SIGTERM is handled by ``Trainer.run`` while training (abandon
    the generation, save, exit 143); before it, it unwinds like an error, so the workers
    started so far are closed; after it, the report and the closing finish."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    previous_sigint = signal.getsignal(signal.SIGINT) if in_main_thread else None
    try:
        return _train(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_sigint is not None:
            signal.signal(signal.SIGINT, previous_sigint)


def resolve(args: argparse.Namespace) -> Any:
    """The config of a new run from the options, ``--config`` and ``--preset``."""
    from pytorch_es.training.config import resolve_config

    return resolve_config(args.env_id, preset=args.preset, config=args.config, overrides=overrides(args),
                          labels=label)


def _train(args: argparse.Namespace) -> int:
    from pytorch_es.training.session import Run, UsageError

    options = {"progress": not args.quiet, "command": ["pytorch-es", *sys.argv[1:]],
               "allow_network": bool(args.ray_allow_network), "slow_hint": workers_hint}
    if args.resume:
        run = Run.resume(args.resume, overrides=overrides(args), labels=label, **options)
        if args.out is not None and Path(args.out).resolve() != run.directory.resolve():
            raise CLIError(
                f"--out {args.out!r} conflicts with --resume {args.resume!r}: a resumed run stays in its directory"
            )
    else:
        config = resolve(args)
        if args.print_config:
            origin = getattr(config, "origin", "")
            print(f"# pytorch-es train --config FILE reads this back; settings from {origin}; "
                  '"none" means no value', flush=True)
            print(config.to_toml(), end="")
            return 0
        run = Run(config, **options)
    try:
        with run:
            _warn_if_pixels(run.problem)
            config = run.config
            if not args.quiet:
                print(run.describe(), flush=True)
            solved = run.solved
            if solved is not None:
                print(
                    f"{config.env_id}: the run in {run.directory} already reached the target "
                    f"({solved:.2f} >= {config.target:g} at generation {run.trainer.generation}); "
                    "to train on, resume with a higher --target or --target none"
                )
                return 0
            if threading.current_thread() is threading.main_thread():
                # Trainer.run handles SIGINT and SIGTERM while it runs and restores these on return:
                # from then on the run has ended and its report is next (cmd_train restores both)
                signal.signal(signal.SIGINT, signal_after_training)
                signal.signal(signal.SIGTERM, signal_after_training)
            outcome = run.train()
            # reported before closing: a 2nd SIGTERM while the workers stop still finds it printed
            return report(outcome.result, config, run.directory, trained=outcome.trained,
                          saved=outcome.saved_generation)
    except UsageError as error:
        raise CLIError(str(error), EXIT_USAGE) from None


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


def workers_hint(seconds: float) -> str | None:
    from pytorch_es.evaluation.factory import available_cores

    cores = available_cores()
    if cores < 2:
        return None
    return (
        f"hint: a generation takes {seconds:.0f} s in this one process; --workers {cores} runs members "
        f"on {cores} worker processes (--backend ray for a cluster)"
    )


def checkpoint_note(directory: Path, generation: int, saved: int | None) -> tuple[str, bool]:
    """What the run directory holds now, as said in the report, and whether it can be resumed."""
    from pytorch_es.training.checkpoint import CHECKPOINT_NAME, checkpoint_generation

    path = directory / CHECKPOINT_NAME
    if saved is not None and saved == generation:
        return f"checkpoint saved in {path}", True
    on_disk = checkpoint_generation(path)
    if on_disk is None:
        return "no checkpoint was written", False
    return f"NOT saved: the checkpoint in {path} is the one of generation {on_disk}", True


def report(result: Any, config: Any, directory: Path, trained: bool, saved: int | None = None) -> int:
    """Print the outcome; the exit status is EXIT_TARGET_MISSED when this call trained
    through its generation budget without reaching the target. ``saved``: the generation
    of the checkpoint this process wrote last (the report says only what was written)."""
    steps = f"{result.env_steps:,} env steps"
    best = "-" if result.best_test_reward is None else f"{result.best_test_reward:.2f}"
    if result.reason in ("interrupted", "terminated"):
        what = "Interrupted" if result.reason == "interrupted" else "Terminated (SIGTERM)"
        note, resumable = checkpoint_note(directory, result.generation, saved)
        print(
            f"{what} at generation {result.generation} ({result.elapsed:.1f} s, {steps}); {note}."
            + (f"\nResume with: pytorch-es train --resume {directory}" if resumable else ""),
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED if result.reason == "interrupted" else EXIT_TERMINATED
    if result.reason == "target":
        print(
            f"Solved {config.env_id} at generation {result.generation}: test mean {best} >= "
            f"{config.target:g} ({config.test_episodes} episodes) "
            f"in {result.elapsed:.1f} s, {steps}."
        )
    else:
        print(
            f"Stopped after {result.generation} generations ({result.elapsed:.1f} s, {steps}); "
            f"best test mean {best} at generation {result.best_generation}."
        )
    print(f"Run directory: {directory}  (pytorch-es eval {directory}; pytorch-es play {directory} --gif out.gif)")
    if trained and result.reason != "target" and config.target is not None:
        print(
            f"pytorch-es train: target {config.target:g} not reached in {result.generation} generations "
            f"(best test mean {best}); try more generations (pytorch-es train --resume {directory} "
            f"--generations {2 * max(result.generation, 1)}), a larger --population or --episodes, "
            f"or another --seed",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_TARGET_MISSED
    return 0


