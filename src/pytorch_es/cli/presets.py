"""``pytorch-es presets``: the shipped presets, or one preset's file to copy and edit."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    presets = commands.add_parser(
        "presets",
        help="list the tuned presets, or print one to copy and edit",
        description="Without NAME: every preset with its env, strategy and measured result. With NAME: the "
        "preset's TOML file (pytorch-es presets NAME > my.toml; pytorch-es train --config my.toml).",
    )
    presets.add_argument("name", metavar="NAME", nargs="?", help="a preset to print")
    presets.set_defaults(func=cmd_presets)


def cmd_presets(args: argparse.Namespace) -> int:
    from pytorch_es.rl.presets import available_presets, get_preset

    if args.name is not None:
        print(get_preset(args.name).path.read_text(), end="")
        return 0
    presets = available_presets()
    width = max(len(preset.name) for preset in presets)
    for preset in presets:
        result = preset.measured.get("result", "not measured")
        print(f"{preset.name:<{width}}  {preset.env_id} with {preset.algo}: {result}")
    print("\npytorch-es train ENV uses the env's preset (pytorch-es train ENV --print-config shows it); "
          "an env without one trains with the generic defaults.")
    return 0
