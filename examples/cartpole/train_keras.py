"""Train the original's Keras CartPole policy with pytorch-es, then save it as a Keras file.

    python examples/cartpole/train_keras.py --weights_path cartpole.keras
    python examples/cartpole/play_keras.py --weights_path cartpole.keras --gif cartpole.gif

The model is plain Keras 3 (torch backend): Input(4) -> Dense(100, relu) -> Dense(2, softmax).
OpenAI-ES searches over its trainable weights; every generation the whole population
plays CartPole-v1 together (one vector env, one batched forward per step). Training
stops when the greedy policy averages >= 475 over 100 episodes on env seeds 1000..1099
(CartPole-v1's "solved"), then the weights are written into the model, saved with
Keras's own format (``.keras``, or ``.weights.h5`` for weights only) and loaded back.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # pytorch-es trains Keras models on the torch backend

import torch

ENV_ID = "CartPole-v1"
GOAL = 475.0  # greedy mean over 100 episodes
TEST_SEED = 1000


def build_model(seed: int):  # -> keras.Model
    """The original example's network (its Keras initialisation, seeded)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )


def check_weights_path(text: str) -> Path:
    """A path Keras can write: ``*.keras`` (whole model) or ``*.weights.h5`` (weights)."""
    path = Path(text)
    if not (path.name.endswith(".keras") or path.name.endswith(".weights.h5")):
        raise SystemExit(f"error: --weights_path {text!r} must end in .keras or .weights.h5 (Keras formats)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SystemExit(f"error: --weights_path {text!r}: directory {str(parent)!r} does not exist")
    if path.is_dir():
        raise SystemExit(f"error: --weights_path {text!r} is a directory")
    return path


def check_cuda(cuda: bool) -> str:
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            f"error: --cuda was given but CUDA is not available (torch {torch.__version__}, "
            "torch.cuda.is_available() is False); run without -c/--cuda"
        )
    return "cuda" if cuda else "cpu"


def save(model, path: Path) -> None:
    if path.name.endswith(".keras"):
        model.save(path)
    else:
        model.save_weights(path)


def load(path: Path, seed: int):  # -> keras.Model
    import keras

    if path.name.endswith(".keras"):
        return keras.models.load_model(path)
    model = build_model(seed + 1)  # a fresh model: the file's weights replace its own
    model.load_weights(path)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--weights_path", default="cartpole.keras",
                        help="where to save the trained model: *.keras or *.weights.h5")
    parser.add_argument("-c", "--cuda", action="store_true",
                        help="keep the strategy (center, noise, update) on the GPU")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and run seed")
    parser.add_argument("--population", type=int, default=48)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=0.1, help="Adam learning rate")
    parser.add_argument("--generations", type=int, default=100, help="generation budget")
    args = parser.parse_args(argv)
    path = check_weights_path(args.weights_path)
    device = check_cuda(args.cuda)

    from pytorch_es import OpenAIES
    from pytorch_es.keras import keras_policy, model_to_vector
    from pytorch_es.rl import GymProblem

    model = build_model(args.seed)
    problem = GymProblem(ENV_ID, policy=keras_policy(model, ENV_ID))
    strategy = OpenAIES(
        model, population_size=args.population, sigma=args.sigma, lr=args.lr,
        optimizer="adam", seed=args.seed, device=device,
    )
    print(f"{ENV_ID}: {problem.policy.describe()}, population {args.population}, device {device}")

    start, env_steps, test = time.perf_counter(), 0, float("nan")
    for generation in range(1, args.generations + 1):
        population = strategy.ask()
        result = problem.evaluate(population, range(len(population)))
        strategy.tell(result.rewards)
        env_steps += result.env_steps
        rewards = result.rewards
        if rewards.max() >= 500:  # worth a greedy test of the center
            test = float(problem.evaluate_policy(strategy.center, episodes=100, seed=TEST_SEED).mean())
        print(
            f"gen {generation:3d}  mean {rewards.mean():6.1f}  max {rewards.max():5.0f}  "
            f"test {test:6.1f}  env steps {env_steps:8d}  {time.perf_counter() - start:5.1f} s"
        )
        if test >= GOAL:
            break
    else:
        print(f"not solved in {args.generations} generations (last greedy test {test:.1f} < {GOAL})")
        return 1

    problem.policy.to_model(strategy.center)  # the trained weights into the Keras model
    save(model, path)
    loaded = load(path, args.seed)
    returns = problem.evaluate_policy(model_to_vector(loaded), episodes=100, seed=TEST_SEED)
    print(
        f"solved in {generation} generations, {time.perf_counter() - start:.1f} s; saved {path}; "
        f"loaded back: greedy mean {returns.mean():.1f} over 100 episodes (env seeds "
        f"{TEST_SEED}..{TEST_SEED + 99})"
    )
    return 0 if returns.mean() >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
