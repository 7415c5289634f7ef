"""``pytorch-es play``: watch a trained policy in a window, or record it as a GIF."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Any

from pytorch_es.cli.common import EXIT_USAGE, CLIError, positive_float, positive_int

MUJOCO_FRAME = 480  # MuJoCo envs' default render size (pixels a side)


def add_parser(commands: Any) -> None:
    play = commands.add_parser("play", help="watch a trained policy, or record it as a GIF")
    play.add_argument("dir", metavar="DIR", help="run directory")
    play.add_argument("--render", action="store_true", help="show the env in a window")
    play.add_argument("--gif", metavar="FILE", help="record the episodes into an animated GIF")
    play.add_argument("--episodes", type=positive_int(), default=1)
    play.add_argument("--seed", type=positive_int(0), default=1000, help="env seed of the first episode")
    play.add_argument("--max-steps", type=positive_int(), help="stop each episode after this many steps")
    play.add_argument("--frame-skip", type=positive_int(), default=2, help="GIF: keep every Nth frame")
    play.add_argument("--scale", type=positive_float(), default=0.5, help="GIF: frame size factor")
    play.add_argument("--fps", type=positive_float(), default=25.0, help="GIF frame rate")
    play.set_defaults(func=cmd_play, check_usage=check_usage)


def check_usage(args: argparse.Namespace) -> None:
    if args.render and args.gif:
        raise CLIError("--render and --gif cannot be combined: a window gives no frames to record", EXIT_USAGE)


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


def mujoco_gif_kwargs(size: int, env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``gym.make`` arguments of a MuJoCo env for GIF frames: rendered at the GIF's size (a
    software-rendered frame costs its pixels), through the model's ``track`` camera, which
    follows the body (Gymnasium 1.4's default is a free camera that stays put: a running
    HalfCheetah leaves the frame within a second). The run's own camera settings win."""
    kwargs = {"width": size, "height": size, **(env_kwargs or {})}
    if "camera_id" not in kwargs:
        kwargs.setdefault("camera_name", "track")
    return kwargs


def cmd_play(args: argparse.Namespace) -> int:
    from pytorch_es.rl import load_policy, make_env
    from pytorch_es.rl.envs import is_mujoco

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
        env_kwargs = mujoco_gif_kwargs(max(16, round(MUJOCO_FRAME * scale)), env_kwargs)
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
