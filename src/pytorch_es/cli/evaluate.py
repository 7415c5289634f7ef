"""``pytorch-es eval``: greedy returns of a trained policy on fixed env seeds."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytorch_es.cli.common import positive_int


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="greedy evaluation of a trained policy",
        description="Greedy returns on env seeds SEED..SEED+N-1.",
    )
    evaluate.add_argument("dir", metavar="DIR", help="run directory")
    evaluate.add_argument("--episodes", type=positive_int(), default=100)
    evaluate.add_argument("--seed", type=positive_int(0), default=1000)
    evaluate.add_argument("--json", action="store_true", help="print one JSON line")
    evaluate.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from pytorch_es.rl import load_policy

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
