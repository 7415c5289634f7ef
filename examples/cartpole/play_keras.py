"""Play CartPole-v1 with a Keras model saved by train_keras.py, in a window or into a GIF.

    python examples/cartpole/play_keras.py --weights_path cartpole.keras --episodes 3
    python examples/cartpole/play_keras.py -w cartpole.keras --render          # needs a display
    python examples/cartpole/play_keras.py -w cartpole.keras --gif cartpole.gif

The loaded model is used as any Keras model: ``argmax(model(obs))`` picks each action.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_keras import ENV_ID, TEST_SEED, build_model, check_cuda


def load_model(text: str, seed: int):  # -> keras.Model
    import keras

    path = Path(text)
    if not path.is_file():
        raise SystemExit(f"error: --weights_path {text!r} does not exist (train with train_keras.py first)")
    try:
        if path.name.endswith(".keras"):
            return keras.models.load_model(path)  # safe mode: refuses Lambda code
        if path.name.endswith(".weights.h5"):
            model = build_model(seed)
            model.load_weights(path)
            return model
    except Exception as error:  # a truncated file, another architecture, not a Keras file
        raise SystemExit(f"error: cannot load {text!r}: {type(error).__name__}: {error}") from None
    raise SystemExit(f"error: --weights_path {text!r} must end in .keras or .weights.h5")


def check_gif(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    parent = path.parent if str(path.parent) else Path(".")
    if path.suffix.lower() != ".gif":
        raise SystemExit(f"error: --gif {text!r} must end in .gif")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise SystemExit(f"error: --gif {text!r}: cannot write to {str(parent)!r}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--weights_path", default="cartpole.keras", help="*.keras or *.weights.h5")
    parser.add_argument("-c", "--cuda", action="store_true", help="run the model on the GPU")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=TEST_SEED, help="env seed of the first episode")
    parser.add_argument("--render", action="store_true", help="show the episodes in a window")
    parser.add_argument("--gif", metavar="FILE", help="record the episodes into an animated GIF")
    args = parser.parse_args(argv)
    if args.render and args.gif:
        raise SystemExit("error: --render and --gif cannot be combined")
    gif = check_gif(args.gif)
    device = check_cuda(args.cuda)

    import gymnasium as gym
    import keras

    with keras.device(device):
        model = load_model(args.weights_path, seed=0)
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame: no sound, and no display
        if not args.render:  # needed unless a window is asked for
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        render_mode = "human" if args.render else ("rgb_array" if gif else None)
        env = gym.make(ENV_ID, render_mode=render_mode)
        frames = []
        try:
            for episode in range(args.episodes):
                obs, _ = env.reset(seed=args.seed + episode)
                total, steps, done = 0.0, 0, False
                while not done:
                    if gif is not None and steps % 2 == 0:
                        frames.append(env.render())
                    probabilities = keras.ops.convert_to_numpy(model(obs[None], training=False))
                    obs, reward, terminated, truncated, _ = env.step(int(np.argmax(probabilities[0])))
                    total, steps, done = total + float(reward), steps + 1, terminated or truncated
                seed = args.seed + episode
                print(f"episode {episode + 1}: return {total:.0f} in {steps} steps (env seed {seed})")
        finally:
            env.close()
    if gif is not None:
        from PIL import Image

        images = [Image.fromarray(frame).reduce(2).quantize(colors=64) for frame in frames]
        images[0].save(gif, save_all=True, append_images=images[1:], duration=40, loop=0)
        print(f"wrote {gif} ({len(images)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
