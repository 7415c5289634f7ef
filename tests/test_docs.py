"""Every Python code block in README.md and docs/*.md runs as written.

The blocks of one file run in order, in one fresh interpreter (like a notebook: a later
block may use what an earlier one defined), in an empty temporary directory. An HTML
comment on the line before a block, invisible on the rendered page, may say:

- ``<!-- docs-test: fragment (why) -->``: the block is not run (an API summary, a quote);
- ``<!-- docs-test: replace "OLD" "NEW" -->``: run it with OLD replaced by NEW (a smaller
  budget); several replace pairs may follow each other in one comment;
- ``<!-- docs-test: before "COMMAND" -->``: run the shell COMMAND in the directory first
  (e.g. the ``pytorch-es train`` that the text says made a run directory).

Fragments must stay few: :data:`MAX_FRAGMENTS` counts them.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_FRAGMENTS = 6
DIRECTIVE = re.compile(r"<!--\s*docs-test:\s*(?P<body>.*?)\s*-->", re.S)
FENCE = re.compile(r"^```python[^\n]*\n(?P<code>.*?)^```", re.S | re.M)


@dataclass
class Block:
    path: Path
    line: int
    code: str
    fragment: bool = False
    before: list[str] = field(default_factory=list)


def parse_directive(body: str, where: str) -> tuple[bool, list[tuple[str, str]], list[str]]:
    """(fragment, replacements, commands) of one ``docs-test:`` comment."""
    if body.startswith("fragment"):
        return True, [], []
    words = shlex.split(body)
    replacements, commands = [], []
    while words:
        verb = words.pop(0)
        if verb == "replace" and len(words) >= 2:
            replacements.append((words.pop(0), words.pop(0)))
        elif verb == "before" and words:
            commands.append(words.pop(0))
        else:
            raise ValueError(f"{where}: bad docs-test directive {body!r}")
    return False, replacements, commands


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        preceding = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        code, fragment, commands = match["code"], False, []
        directive = DIRECTIVE.search(preceding)
        if directive:
            fragment, replacements, commands = parse_directive(directive["body"], f"{path.name}:{line}")
            for old, new in replacements:
                assert old in code, f"{path.name}:{line}: {old!r} is not in the block"
                code = code.replace(old, new)
        found.append(Block(path, line, code, fragment, commands))
    return found


def test_fragments_are_few():
    fragments = [f"{b.path.name}:{b.line}" for path in DOCS for b in blocks(path) if b.fragment]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


@pytest.mark.parametrize("path", [p for p in DOCS if any(not b.fragment for b in blocks(p))],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_code_blocks_run_as_written(path, tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "torch", "RAY_AUTH_MODE": "disabled", "MPLBACKEND": "Agg",
           "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get(
               "PYTHONPATH", "")])}
    bin_dir = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    script = []
    for block in blocks(path):
        if block.fragment:
            continue
        for command in block.before:
            done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, f"{path.name}:{block.line}: {command}\n{done.stderr[-2000:]}"
        script.append(f"# --- {path.name}:{block.line}\n{block.code}")
    source = tmp_path / "blocks.py"
    source.write_text("\n".join(script))
    done = subprocess.run([sys.executable, str(source)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{path.name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
