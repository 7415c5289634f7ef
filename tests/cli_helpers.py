"""Helpers shared by the CLI tests (test_cli.py, test_cli_resume.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from pytorch_es.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``main(argv)`` in this process -> (exit status, stdout, stderr); argparse exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    """A non-zero status and exactly one line on stderr holding every fragment; returns it."""
    assert code not in (0, None)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def modules_after(*calls: list[str], modules: tuple[str, ...] = ("torch", "torch._dynamo")) -> dict[str, bool]:
    """Run ``main(argv)`` for each argv in a fresh interpreter; which of ``modules`` it imported."""
    code = (
        "import json, sys\n"
        "from pytorch_es.cli import main\n"
        f"for argv in {list(calls)!r}:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps({{name: name in sys.modules for name in {list(modules)!r}}}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_equal(a, b, where: str = "state") -> None:
    """Nested containers of tensors and numbers are exactly equal (``where`` names the first difference)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for index, (x, y) in enumerate(zip(a, b)):
            assert_equal(x, y, f"{where}[{index}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def strip_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in rows]
