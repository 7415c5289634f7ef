"""Watch (or record) the CartPole agent trained by ``train_pytorch.py``.

    python examples/cartpole/play_pytorch.py --weights_path cartpole_weights.p            # window
    python examples/cartpole/play_pytorch.py --weights_path cartpole_weights.p --gif cartpole.gif

The weights are read with ``pytorch_es.load_weights``: a plain tensor file, loaded with
``torch.load(weights_only=True)``, so a crafted file cannot run code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_pytorch import ENV_ID, build_model, member_model, play_episode

from pytorch_es import load_weights


def record_gif(weights, path: str, seed: int, episodes: int, every: int = 2, scale: int = 2) -> None:
    """Record greedy episodes into ``path``: every ``every``-th frame, size divided by ``scale``."""
    from PIL import Image

    frames: list[Image.Image] = []
    env = gym.make(ENV_ID, render_mode="rgb_array")
    model = member_model(weights)
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, step, done = 0.0, 0, False
        while not done:
            if step % every == 0:
                frame = Image.fromarray(env.render()).reduce(scale)
                frames.append(frame.quantize(colors=64, method=Image.Quantize.FASTOCTREE))
            with torch.no_grad():
                batch = torch.as_tensor(obs, dtype=torch.float32, device=weights[0].device).unsqueeze(0)
                action = int(model(batch).argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            step += 1
            done = terminated or truncated
        print(f"episode {episode + 1}: return {total:.0f}")
    env.close()
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)
    print(f"wrote {path} ({len(frames)} frames, {os.path.getsize(path) / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description="Play CartPole-v1 with trained weights.")
    parser.add_argument("-w", "--weights_path", type=str, required=True, help="Path to the weights")
    parser.add_argument("-c", "--cuda", action="store_true", help="Whether or not to use CUDA")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1000, help="env seed of the first episode")
    parser.add_argument("--gif", help="record an animated GIF instead of opening a window")
    args = parser.parse_args()
    if args.cuda and not torch.cuda.is_available():
        parser.error(f"--cuda: CUDA is not available (torch {torch.__version__}); run without -c/--cuda")
    if args.gif and not os.path.isdir(os.path.dirname(os.path.abspath(args.gif))):
        parser.error(f"--gif {args.gif!r}: its directory does not exist")

    try:
        weights = load_weights(args.weights_path)
    except (OSError, ValueError) as error:
        parser.error(f"--weights_path: {error}")
    model = build_model()
    shapes = [tuple(p.shape) for p in model.parameters()]
    if [tuple(w.shape) for w in weights] != shapes:
        parser.error(
            f"--weights_path holds tensors of shapes {[tuple(w.shape) for w in weights]}, "
            f"the CartPole model has {shapes}"
        )
    device = torch.device("cuda" if args.cuda else "cpu")
    weights = [w.to(device) for w in weights]

    if args.gif:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        record_gif(weights, args.gif, args.seed, args.episodes)
        return
    env = gym.make(ENV_ID, render_mode="human")
    returns = [play_episode(weights, env, args.seed + e) for e in range(args.episodes)]
    env.close()
    print(f"returns: {returns} (mean {np.mean(returns):.1f})")


if __name__ == "__main__":
    main()
