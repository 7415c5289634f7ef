"""The training loop (layer 5) on plain function problems: stop rules, metrics, resume."""

from __future__ import annotations

import csv
import io
import math
import threading
from typing import Any

import pytest
import torch

from pytorch_es import BatchFunctionProblem, OpenAIES, ThreadEvaluator
from pytorch_es.evaluation.base import Evaluation, Problem
from pytorch_es.training import (
    FIELDS,
    CheckpointCallback,
    LambdaCallback,
    MetricsCSV,
    ProgressCallback,
    TensorBoardLogger,
    Trainer,
    load_checkpoint,
    read_metrics,
)

TARGET = torch.linspace(-1, 1, 8)


def sphere(members: torch.Tensor) -> torch.Tensor:
    return -(members - TARGET).pow(2).sum(1)


def score_center(center: torch.Tensor) -> float:
    return float(-(center - TARGET).pow(2).sum())


def make_trainer(seed: int = 0, callbacks=(), **kwargs: Any) -> Trainer:
    strategy = OpenAIES(torch.zeros(8), population_size=16, sigma=0.1, lr=0.05, optimizer="adam", seed=seed)
    kwargs.setdefault("test", score_center)
    return Trainer(strategy, BatchFunctionProblem(sphere), callbacks=callbacks, **kwargs)


def test_stops_at_the_target_measured_by_the_test_of_the_center():
    trainer = make_trainer(target=-0.05, test_every=2)
    result = trainer.run(500, handle_interrupts=False)
    assert result.reason == "target" and result.solved
    assert result.generation % 2 == 0 and result.generation < 500
    assert result.best_test_reward >= -0.05
    assert score_center(trainer.best_center) == result.best_test_reward
    tested = [row["generation"] for row in trainer.metrics if row["test_reward"] is not None]
    assert tested == list(range(2, result.generation + 1, 2))


def test_budget_is_total_generations_and_the_last_one_is_tested():
    trainer = make_trainer(test_every=4)
    result = trainer.run(7, handle_interrupts=False)
    assert result.reason == "generations" and result.generation == 7
    assert [r["generation"] for r in trainer.metrics if r["test_reward"] is not None] == [4, 7]
    assert trainer.run(7).generation == 7  # nothing left to do
    assert len(trainer.metrics) == 7


def test_rows_hold_every_metric_field():
    trainer = make_trainer()
    trainer.run(3, handle_interrupts=False)
    row = trainer.metrics[-1]
    assert set(FIELDS) <= set(row)
    assert row["reward_min"] <= row["reward_mean"] <= row["reward_max"]
    assert row["sigma"] == 0.1 and row["lr"] == 0.05 and row["update_norm"] > 0
    assert row["wall_time"] >= trainer.metrics[0]["wall_time"] > 0


def test_without_a_test_the_best_center_is_the_last():
    trainer = make_trainer(test=None)
    result = trainer.run(5, handle_interrupts=False)
    assert result.best_generation == 5 and torch.equal(trainer.best_center, trainer.strategy.center)


def stop_at(generation: int) -> LambdaCallback:
    def stop(trainer: Trainer, row: dict[str, Any]) -> None:
        if row["generation"] == generation:
            trainer.request_stop()

    return LambdaCallback(on_generation_end=stop)


def test_a_callback_can_stop_the_run():
    result = make_trainer(callbacks=[stop_at(3)]).run(100, handle_interrupts=False)
    assert (result.reason, result.generation) == ("stopped", 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 1.0, "test": None}, "target needs a test function"),
        ({"test_every": 0}, "test_every must be an int >= 1"),
        ({"target": float("nan")}, "target must be a number"),
        ({"test": 3}, "test must be callable"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_trainer(**kwargs)


def test_bad_generations_is_named():
    with pytest.raises(ValueError, match="generations must be an int >= 0"):
        make_trainer().run(-1)


def test_resume_from_a_state_dict_is_bit_identical(tmp_path):
    full = make_trainer(seed=3, test_every=3)
    full.run(12, handle_interrupts=False)

    checkpoints = CheckpointCallback(tmp_path, {"k": 1}, every=5)
    first = make_trainer(seed=3, test_every=3, callbacks=[checkpoints, stop_at(7)])
    first.run(12, handle_interrupts=False)  # checkpoints at 5, then 7 when it stops
    payload = load_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["state"]["generation"] == 7 and payload["config"] == {"k": 1}
    assert load_checkpoint(tmp_path / "checkpoint.prev.pt")["state"]["generation"] == 5

    resumed = make_trainer(seed=99, test_every=3)  # the seed comes from the checkpoint
    resumed.load_state_dict(payload["state"])
    resumed.run(12, handle_interrupts=False)
    assert torch.equal(resumed.strategy.center, full.strategy.center)
    assert torch.equal(resumed.best_center, full.best_center)
    timing = ("wall_time", "generation_time")
    expected = [{k: v for k, v in row.items() if k not in timing} for row in full.metrics]
    assert [{k: v for k, v in row.items() if k not in timing} for row in resumed.metrics] == expected
    assert resumed.metrics[-1]["wall_time"] >= payload["state"]["elapsed"]


def test_metrics_csv_is_rewritten_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    trainer = make_trainer(callbacks=[MetricsCSV(path)], test_every=2)
    trainer.run(6, handle_interrupts=False)
    state = trainer.state_dict()
    trainer.run(9, handle_interrupts=False)  # rows 7..9 appended, later "lost" by a crash
    assert [r["generation"] for r in read_metrics(path)] == list(range(1, 10))

    resumed = make_trainer(callbacks=[MetricsCSV(path)], test_every=2)
    resumed.load_state_dict(state)
    resumed.run(8, handle_interrupts=False)
    rows = read_metrics(path)
    assert [r["generation"] for r in rows] == list(range(1, 9))
    with open(path, newline="") as file:
        assert next(csv.reader(file)) == list(FIELDS)
    assert rows[0]["test_reward"] is None
    assert rows[1]["test_reward"] == resumed.metrics[1]["test_reward"]
    assert rows[-1]["reward_mean"] == resumed.metrics[-1]["reward_mean"]  # full precision


def test_read_metrics_names_a_bad_file(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a metrics file"):
        read_metrics(path)


class StatefulProblem(Problem):
    """Counts evaluated members in its state; raises KeyboardInterrupt on a chosen call."""

    def __init__(self, interrupt_on: int | None = None) -> None:
        self.count = 0
        self.calls = 0
        self.interrupt_on = interrupt_on

    def evaluate(self, population, indices):
        indices = list(indices)
        self.calls += 1
        self.count += len(indices)  # state changes before the interrupt lands
        if self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        rewards = sphere(population.members(indices)).to(torch.float64)
        return Evaluation(indices, rewards, env_steps=10 * len(indices))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_an_abandoned_generation_rolls_the_problem_back_and_checkpoints(tmp_path):
    problem = StatefulProblem(interrupt_on=4)
    strategy = OpenAIES(torch.zeros(8), population_size=6, sigma=0.1, lr=0.05, seed=0)
    trainer = Trainer(strategy, problem, callbacks=[CheckpointCallback(tmp_path, every=0)])
    result = trainer.run(10)
    assert (result.reason, result.generation, result.abandoned) == ("interrupted", 3, True)
    assert problem.count == 18 and trainer.env_steps == 180
    state = load_checkpoint(tmp_path / "checkpoint.pt")["state"]
    assert state["generation"] == 3 and state["problem"] == {"count": 18}
    assert state["strategy"]["generation"] == 3


def test_an_error_in_a_member_propagates_after_a_consistent_checkpoint(tmp_path):
    calls = {"n": 0}

    def flaky(members):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return sphere(members)

    strategy = OpenAIES(torch.zeros(8), population_size=6, sigma=0.1, lr=0.05, seed=0)
    checkpoints = CheckpointCallback(tmp_path, every=0)
    trainer = Trainer(strategy, BatchFunctionProblem(flaky), callbacks=[checkpoints])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.run(10)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["state"]["generation"] == 2


def test_sigint_handler_finishes_the_generation_and_restores_the_previous_handler():
    import os
    import signal

    previous = signal.getsignal(signal.SIGINT)
    fired = threading.Event()

    def interrupt_once(trainer, row):
        if row["generation"] == 2 and not fired.is_set():
            fired.set()
            os.kill(os.getpid(), signal.SIGINT)

    trainer = make_trainer(callbacks=[LambdaCallback(on_generation_end=interrupt_once)])
    result = trainer.run(50)
    assert (result.reason, result.generation, result.abandoned) == ("interrupted", 2, False)
    assert signal.getsignal(signal.SIGINT) is previous


def test_tensorboard_events_are_written_and_purged_on_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(callbacks=[TensorBoardLogger(tmp_path / "tb")], test_every=2)
    trainer.run(4, handle_interrupts=False)
    accumulator = EventAccumulator(str(tmp_path / "tb" / "generations"))
    accumulator.Reload()
    assert "es/reward_mean" in accumulator.Tags()["scalars"]
    assert [e.step for e in accumulator.Scalars("es/reward_mean")] == [1, 2, 3, 4]
    assert [e.step for e in accumulator.Scalars("es/test_reward")] == [2, 4]


def test_progress_prints_plain_lines_off_a_terminal():
    stream = io.StringIO()
    trainer = make_trainer(callbacks=[ProgressCallback(stream, every=2)], test_every=3)
    trainer.run(5, handle_interrupts=False)
    lines = stream.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["2/5", "4/5", "5/5"]
    assert "mean" in lines[0] and "max" in lines[0] and "test" in lines[0] and lines[0].endswith("s")


def test_progress_with_rich_runs_without_a_terminal():
    stream = io.StringIO()
    trainer = make_trainer(callbacks=[ProgressCallback(stream, rich=True)])
    trainer.run(3, handle_interrupts=False)
    assert "3/3" in stream.getvalue()


def test_threads_give_the_same_numbers_as_serial():
    serial = make_trainer(seed=5)
    serial.run(4, handle_interrupts=False)
    with ThreadEvaluator(3) as evaluator:
        threaded = make_trainer(seed=5, evaluator=evaluator)
        threaded.run(4, handle_interrupts=False)
    assert torch.equal(serial.strategy.center, threaded.strategy.center)
    assert math.isclose(serial.metrics[-1]["reward_mean"], threaded.metrics[-1]["reward_mean"])


def test_sigterm_abandons_the_generation_checkpoints_and_restores_the_handler(tmp_path):
    """A preemption notice (SIGTERM) mid-evaluation: no waiting for the generation, the
    problem is rolled back and the checkpoint is the last finished generation."""
    import os
    import signal

    class TerminatedMidGeneration(StatefulProblem):
        def evaluate(self, population, indices):
            if self.calls == 3:  # the 4th evaluation: generation 4 is never finished
                self.count += 1000  # state changed before the signal lands
                os.kill(os.getpid(), signal.SIGTERM)
            return super().evaluate(population, indices)

    previous = signal.getsignal(signal.SIGTERM)
    problem = TerminatedMidGeneration()
    strategy = OpenAIES(torch.zeros(8), population_size=6, sigma=0.1, lr=0.05, seed=0)
    trainer = Trainer(strategy, problem, callbacks=[CheckpointCallback(tmp_path, every=0)])
    result = trainer.run(10)
    assert (result.reason, result.generation, result.abandoned) == ("terminated", 3, True)
    assert problem.count == 18 and problem.calls == 3  # rolled back; 4th call never returned
    state = load_checkpoint(tmp_path / "checkpoint.pt")["state"]
    assert state["generation"] == 3 and state["problem"] == {"count": 18}
    assert signal.getsignal(signal.SIGTERM) is previous


def test_sigterm_between_evaluations_stops_after_the_generation():
    import os
    import signal

    def terminate_once(trainer, row):
        if row["generation"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    trainer = make_trainer(callbacks=[LambdaCallback(on_generation_end=terminate_once)])
    result = trainer.run(50)
    assert (result.reason, result.generation, result.abandoned) == ("terminated", 2, False)


def test_test_at_end_false_tests_only_on_the_period_and_step_can_skip_or_force_a_test():
    trainer = make_trainer(test_every=4, test_at_end=False)
    trainer.run(7, handle_interrupts=False)
    assert [r["generation"] for r in trainer.metrics if r["test_reward"] is not None] == [4]
    assert trainer.step(test=True)["test_reward"] is not None  # generation 8: forced
    trainer.max_generations = 100
    for _ in range(4):  # 9..12: 12 is on the period, skipped
        assert trainer.step(test=False)["test_reward"] is None
    with pytest.raises(TypeError, match="test must be a bool or None"):
        trainer.step(test=1)
    with pytest.raises(TypeError, match="test_at_end must be a bool"):
        make_trainer(test_at_end="no")


def test_goal_stop_needs_consecutive_tests_at_the_goal_and_resets_below_it():
    from pytorch_es.training import GoalStop

    scores = iter([5.0, 5.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    goal = GoalStop(4.0, consecutive=3)
    trainer = make_trainer(test=lambda center: next(scores), test_every=2, callbacks=[goal])
    result = trainer.run(100, handle_interrupts=False)
    assert result.reason == "target" and result.generation == 12  # tests 1, 2 pass, 3 fails, 4, 5, 6 pass
    assert goal.count == 3
    at_zero = GoalStop(0, consecutive=1)  # a goal of 0 is a goal
    assert make_trainer(test=lambda center: 0.0, callbacks=[at_zero]).run(50, handle_interrupts=False).generation == 1
    for arguments, error, message in [
        (("high",), TypeError, "goal must be a number, got str"),
        ((float("nan"),), ValueError, "goal must be a number, got nan"),
        ((1.0, 0), ValueError, "consecutive must be an int >= 1, got 0"),
        ((1.0, True), ValueError, "consecutive must be an int >= 1"),
    ]:
        with pytest.raises(error, match=message):
            GoalStop(*arguments)
