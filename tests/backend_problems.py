"""Small picklable problems for the backend tests (importable by worker processes and
Ray actors, which find this directory on the driver's sys.path)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from pytorch_es import OpenAIES
from pytorch_es.core.population import Population
from pytorch_es.evaluation.base import Evaluation, Evaluator, MemberEvaluationError, Problem

DIM = 20
TARGET = torch.linspace(-1.0, 1.0, DIM)


class Quadratic(Problem):
    """``-||x - target||^2 + shift`` per member; ``shift`` travels as worker state and is
    updated by ``merge`` from per-member payloads (so the whole protocol is exercised)."""

    def __init__(self, dim: int = DIM) -> None:
        self.target = torch.linspace(-1.0, 1.0, dim)
        self.shift = 0.0

    def reward(self, population: Population, index: int) -> float:
        member = population.member(index)
        return float(-(member - self.target).pow(2).sum()) + self.shift

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        indices = list(indices)
        rewards = torch.tensor([self.reward(population, i) for i in indices], dtype=torch.float64)
        return Evaluation(indices, rewards, env_steps=3 * len(indices), payload=rewards.clone())

    def worker_state(self) -> dict:
        return {"shift": self.shift}

    def load_worker_state(self, state: dict) -> None:
        self.shift = state["shift"]

    def merge(self, evaluations: Sequence[Evaluation]) -> None:
        rows = sorted(
            (i, float(r)) for e in evaluations for i, r in zip(e.indices, e.payload.tolist(), strict=True)
        )
        self.shift = 0.01 * sum(r for _, r in rows) / len(rows)


class Sabotage(Quadratic):
    """A Quadratic whose worker misbehaves on ``member``: ``mode`` is ``"kill"`` (SIGKILL
    its own process), ``"hang"`` (sleep), ``"wait_kill"`` (write its pid, then sleep until
    the test kills it). With ``once``, only the first time (a marker file records it)."""

    def __init__(self, member: int, mode: str, marker: str | os.PathLike[str], once: bool = True) -> None:
        super().__init__()
        self.member, self.mode, self.marker, self.once = member, mode, str(marker), once

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        indices = list(indices)
        if self.member in indices and not (self.once and os.path.exists(self.marker)):
            Path(self.marker).write_text(str(os.getpid()))
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(300)
        return super().evaluate(population, indices)


def _explode(index: int) -> float:
    raise ValueError(f"boom at member {index}")


class Raising(Quadratic):
    """Raises inside the 'user' function for ``member`` (wrapped with its index, as
    FunctionProblem does), or a bare error without an index when ``bare``."""

    def __init__(self, member: int, bare: bool = False) -> None:
        super().__init__()
        self.member, self.bare = member, bare

    def reward(self, population: Population, index: int) -> float:
        if index == self.member:
            if self.bare:
                raise RuntimeError("env crashed")
            try:
                return _explode(index)
            except Exception as error:
                raise MemberEvaluationError(index, f"{type(error).__name__}: {error}") from error
        return super().reward(population, index)


class Sleepy(Quadratic):
    """Sleeps ``seconds`` per chunk (for Ctrl-C and shutdown tests)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        time.sleep(self.seconds)
        return super().evaluate(population, indices)


def weights_reward(weights: list[torch.Tensor]) -> float:
    """An original-API reward function: a list of weight tensors in, a float out."""
    return -sum(float((w - 0.5).pow(2).sum()) for w in weights)


class FirstCoordinate(Problem):
    """The cheapest reward of a big policy: its first parameter (for byte counting)."""

    def evaluate(self, population: Population, indices: Sequence[int]) -> Evaluation:
        indices = list(indices)
        rewards = torch.tensor([float(population.member(i)[0]) for i in indices], dtype=torch.float64)
        return Evaluation(indices, rewards)


def train(evaluator: Evaluator, problem: Problem, generations: int = 3, seed: int = 7, population: int = 12):
    """A few generations of OpenAI-ES (Adam); returns (final center, rewards per generation)."""
    strategy = OpenAIES(
        torch.zeros(DIM), population_size=population, sigma=0.1, lr=0.05, optimizer="adam", seed=seed
    )
    history = []
    for _ in range(generations):
        result = evaluator.evaluate(strategy.ask(), problem)
        strategy.tell(result.rewards)
        history.append(result.rewards)
    return strategy.center.clone(), torch.stack(history)


def kill_when_marked(marker: Path) -> threading.Thread:
    """Start a thread that SIGKILLs the pid a worker writes into ``marker`` (from outside the worker)."""

    def killer() -> None:
        while not marker.exists() or not marker.read_text():
            time.sleep(0.02)
        os.kill(int(marker.read_text()), signal.SIGKILL)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    return thread


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: Sequence[int], seconds: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def processes_matching(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry)):
            found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """Live descendants of process ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parents[int(entry)] = int(file.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return [p for p in found if alive(p)]


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """A real 2-CPU Ray on this machine (pinned to the loopback node address, as the
    project does; not 127.0.0.1: Ray rewrites that); workers find the test problems on
    sys.path. Shut down after, and no Ray process may be left."""
    import ray

    from pytorch_es.evaluation.ray_evaluator import LOOPBACK_NODE_IP

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():  # pragma: no cover - another module left Ray running
        ray.shutdown()
    ray.init(
        num_cpus=2,
        _node_ip_address=LOOPBACK_NODE_IP,
        include_dashboard=False,
        log_to_driver=False,
        job_config=ray.job_config.JobConfig(code_search_path=[str(Path(__file__).resolve().parent)]),
    )
    session = ray._private.worker._global_node.get_session_dir_path()
    try:
        yield
    finally:
        ray.shutdown()
    assert wait_gone(processes_matching(session), 15) == [], "Ray processes left behind"
