"""MuJoCo envs (the ``mujoco`` extra): training on every backend, headless GIFs, the reward shift
in config.json (the missing-extra line is tested in test_cli_output.py).

Short episodes (``--max-steps 20``) and small populations: CI time, not learning, is tested here.
"""

from __future__ import annotations

import csv
import json
import os

import pytest

from cli_helpers import assert_one_line_error, run_cli
from pytorch_es.rl.envs import _importable, is_mujoco

needs_mujoco = pytest.mark.skipif(not _importable("mujoco"), reason="needs the mujoco extra")

SHORT = ["--max-steps", "20", "--population", "8", "--generations", "2", "--test-episodes", "2",
         "--test-every", "2", "--hidden", "none", "--seed", "3", "--target", "none", "--quiet"]


def _metrics(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        row.pop("wall_time")
    return rows


def test_mujoco_ids_are_recognised():
    assert is_mujoco("Hopper-v5") and is_mujoco("Humanoid-v5")
    assert not is_mujoco("CartPole-v1") and not is_mujoco("LunarLander-v3")


@needs_mujoco
def test_hopper_trains_with_identical_results_on_serial_and_processes(capsys, tmp_path):
    runs = {}
    for backend in ("serial", "processes"):
        run = tmp_path / backend
        extra = ["--workers", "2"] if backend == "processes" else []
        code, _, err = run_cli(capsys, "train", "Hopper-v5", *SHORT, "--backend", backend, *extra, "--out", str(run))
        assert code == 0, err
        runs[backend] = _metrics(run)
    assert len(runs["serial"]) == 2 and float(runs["serial"][-1]["env_steps"]) > 0
    assert runs["serial"] == runs["processes"]
    assert runs["serial"][-1]["test_reward"] != ""


@needs_mujoco
def test_the_gif_of_a_mujoco_run_has_several_small_frames(capsys, tmp_path, monkeypatch):
    from PIL import Image

    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "Hopper-v5", *SHORT, "--generations", "1", "--test-every", "1",
                           "--out", str(run))
    assert code == 0, err
    monkeypatch.delenv("MUJOCO_GL", raising=False)  # play sets it (restored after the test)
    gif = tmp_path / "hopper.gif"
    code, out, err = run_cli(capsys, "play", str(run), "--gif", str(gif), "--max-steps", "6", "--frame-skip", "1",
                             "--scale", "0.25")
    assert code == 0, err
    assert os.environ.get("MUJOCO_GL") == "egl"
    with Image.open(gif) as image:
        assert image.n_frames > 1  # the start and one frame per step (fewer if the hopper fell)
        assert image.size == (120, 120)  # rendered at 480 * 0.25, not rendered large and shrunk
    assert "wrote" in out and "frames" in out


@needs_mujoco
def test_gif_frames_follow_a_running_body(monkeypatch):
    """play's MuJoCo camera tracks the body: a HalfCheetah moved 20 m forward is still in the
    frame (with Gymnasium's default free camera the frame is then floor only)."""

    from pytorch_es.cli.play import mujoco_gif_kwargs
    from pytorch_es.rl.envs import make_env

    monkeypatch.setenv("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl"))

    def body_pixels(env_kwargs):
        env = make_env("HalfCheetah-v5", render_mode="rgb_array", env_kwargs=env_kwargs)
        try:
            env.reset(seed=0)
            env.render()  # the first frame, at the start, as play records it
            model = env.unwrapped
            qpos = model.data.qpos.copy()
            qpos[0] += 20.0
            model.set_state(qpos, model.data.qvel.copy())
            frame = env.render().astype(int)
        finally:
            env.close()
        red, green, blue = frame[..., 0], frame[..., 1], frame[..., 2]
        return int(((red - blue > 60) & (red > green)).sum())  # the body's tan and pink, not the floor's

    assert body_pixels(mujoco_gif_kwargs(64, None)) > 20
    assert body_pixels({"width": 64, "height": 64}) == 0
    assert mujoco_gif_kwargs(64, {"camera_id": 0}) == {"width": 64, "height": 64, "camera_id": 0}


@needs_mujoco
def test_config_json_records_the_reward_shift_and_resume_keeps_it(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "Hopper-v5", *SHORT, "--generations", "1", "--reward-shift", "1",
                           "--out", str(run))
    assert code == 0, err
    assert err == ""  # Hopper pays a survival bonus: no warning
    config = json.loads((run / "config.json").read_text())
    assert config["problem"]["reward_shift"] == 1.0
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--reward-shift", "0", "--generations", "2")
    assert_one_line_error(code, err, "--reward-shift")
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--generations", "2", "--quiet")
    assert code == 0, err
    assert len(_metrics(run)) == 2


@needs_mujoco
def test_mujoco_model_warnings_become_python_warnings(capfd):
    """mujoco 4 prints a deprecation at every HalfCheetah model load; it is routed to Python's
    ``warnings`` (shown once per process by default) instead of the terminal."""
    import warnings

    from pytorch_es.rl.envs import make_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            make_env("HalfCheetah-v5").close()
    assert any("MuJoCo: compiler attribute 'settotalmass'" in str(w.message) for w in caught)
    out, err = capfd.readouterr()
    assert "settotalmass" not in out + err
