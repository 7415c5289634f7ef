"""Helpers shared by the CLI tests (test_cli.py, test_cli_resume.py)."""

from __future__ import annotations

import json
import subprocess
import sys

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
