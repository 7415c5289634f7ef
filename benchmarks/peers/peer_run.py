"""Run a peer library's strategy on the quality benchmark's test functions, for
``benchmarks/strategies.py``. Runs in the peer's own venv (``benchmarks/peers/setup.sh``):

    .peers/evosax/bin/python benchmarks/peers/peer_run.py < job.json    # evosax 0.3, CPU JAX
    .peers/evotorch/bin/python benchmarks/peers/peer_run.py < job.json  # EvoTorch 0.6.1
    .peers/evox/bin/python benchmarks/peers/peer_run.py < job.json      # EvoX 1.4.0

Reads one JSON object from stdin: ``{"library": "evosax" | "evotorch" | "evox", "algo" (our
registry name: snes, xnes, pgpe, cem, openai-es, ars, cr-fm-nes, cma-es), "function", "dim", "population",
"sigma" (the initial scale of every member's coordinate), "budget", "target", "rotation" (a
dim x dim list or null), "settings" (hyperparameters that replace the library's defaults,
see ``SETTINGS``; ``{}`` for its defaults), "points" (a list of points to evaluate, for the
check that the functions equal ours), "runs": [{"seed", "x0"}, ...]}``. Writes one JSON
object: ``{"runs": [{"evaluations", "curve": [[evaluations, best f], ...], "center_f"}, ...], "values":
[f(point), ...], "used": {the hyperparameters used, defaults included}}``. A run stops when
its best f is below ``target`` or after ``budget`` evaluations; ``center_f`` is f at the final
center (not counted as an evaluation). Minimisation throughout; the
functions come from ``quality_functions.py`` (numpy, float64). evosax runs with
``jax_enable_x64`` (float64, like ours); EvoTorch with ``dtype=torch.float64``; EvoX with
float64 as torch's default dtype and dynamo disabled (its CMAES's ``torch.cond`` fails to
compile under torch 2.13; eager, it runs).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable

import numpy as np
from quality_functions import make_function  # beside this file

# settings a job may give (else the library's default): lr (the center's learning rate),
# max_speed (ClipUp), top_directions (ARS's b), elite_ratio (CEM), scale_lr (the scale's rate),
# weights (EvoX's SNES weight_type: "temp" or "recomb"), shaping ("centered_ranks": EvoX's OpenES
# fed centered ranks through its workflow's fitness_transform instead of raw f)
SETTINGS = {"lr", "max_speed", "top_directions", "elite_ratio", "scale_lr", "weights", "shaping"}


class Evosax:
    """An evosax 0.3 strategy behind ``ask() -> (N, n) array`` and ``tell(values)``."""

    def __init__(self, algo: str, n: int, population: int, sigma: float, settings: dict) -> None:
        """One strategy object per job: jax.jit caches on it, so the seeds share one compilation."""
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 like ours (evosax's default is float32)
        import jax.numpy as jnp
        import optax
        from evosax import algorithms
        from evosax.core.optimizer import clipup

        self.jax, self.jnp = jax, jnp
        names = {"snes": "SNES", "xnes": "xNES", "pgpe": "PGPE", "openai-es": "Open_ES", "ars": "ARS",
                 "cr-fm-nes": "CR_FM_NES"}
        if algo not in names:
            raise ValueError(f"evosax has no {algo!r} here (it has {sorted(names)})")
        kwargs: dict = {}
        self.used: dict = {"class": f"evosax.algorithms.{names[algo]}"}
        if algo == "pgpe":
            lr = settings.get("lr", 0.01)  # evosax's default clipup(learning_rate=0.01, max_velocity=0.02)
            speed = settings.get("max_speed", 0.02 if "lr" not in settings else 2 * lr)
            kwargs["optimizer"] = clipup(learning_rate=lr, max_velocity=speed)
            self.used.update(optimizer="clipup", lr=lr, max_speed=speed, momentum=0.9)
        elif algo == "openai-es":
            lr = settings.get("lr", 1e-3)  # evosax's default optax.sgd(1e-3)
            kwargs.update(optimizer=optax.sgd(lr), std_schedule=optax.constant_schedule(sigma))
            self.used.update(optimizer="sgd", lr=lr, antithetic=True, shaping="centered ranks")
        elif algo == "ars":
            lr = settings.get("lr", 1e-3)  # evosax's default optax.adam(1e-3)
            optimizer = "sgd" if "lr" in settings else "adam"
            kwargs.update(optimizer=optax.sgd(lr) if optimizer == "sgd" else optax.adam(lr),
                          std_schedule=optax.constant_schedule(sigma))
            self.used.update(optimizer=optimizer, lr=lr)
        self.es = getattr(algorithms, names[algo])(population_size=population, solution=jnp.zeros(n), **kwargs)
        if algo == "ars":
            if "top_directions" in settings:  # num_elites = int(elite_ratio * N // 2)
                self.es.elite_ratio = settings["top_directions"] / (population // 2)
            self.used["top_directions"] = self.es.num_elites
        self.params = self.es.default_params
        if hasattr(self.params, "std_init"):
            # xNES samples mean + std * z @ B with B = std_init * I at the start, so its initial
            # scale is std_init**2: give it sqrt(sigma) for the same initial scale as the others
            std_init = math.sqrt(sigma) if algo == "xnes" else sigma
            self.params = self.params.replace(std_init=std_init)
            self.used["std_init"] = std_init
        if "scale_lr" in settings:
            fields = {"pgpe": "std_lr", "snes": "lr_std_init", "xnes": "lr_std_init"}
            if algo not in fields:
                raise ValueError(f"setting scale_lr is for {sorted(fields)}, not {algo!r}")
            field = fields[algo]
            self.params = self.params.replace(**{field: settings["scale_lr"]})
        for field in ("std_lr", "std_max_change", "lr_std_init", "lr_B"):
            if hasattr(self.params, field):
                self.used[field] = float(getattr(self.params, field))

    def start(self, x0: np.ndarray, seed: int) -> None:
        self.key = self.jax.random.key(seed)
        self.key, key = self.jax.random.split(self.key)
        self.state = self.es.init(key, self.jnp.asarray(x0), self.params)
        self.population = None

    def ask(self) -> np.ndarray:
        self.key, key = self.jax.random.split(self.key)
        self.population, self.state = self.es.ask(key, self.state, self.params)
        return np.asarray(self.population, dtype=np.float64)

    def tell(self, values: np.ndarray) -> None:
        self.key, key = self.jax.random.split(self.key)
        self.state, _ = self.es.tell(key, self.population, self.jnp.asarray(values), self.state, self.params)

    def center(self) -> np.ndarray:
        return np.asarray(self.state.mean, dtype=np.float64)


class EvoTorch:
    """An EvoTorch 0.6.1 searcher driven one ``step()`` (sample + evaluate) at a time."""

    def __init__(self, algo: str, n: int, population: int, sigma: float, x0: np.ndarray, seed: int,
                 settings: dict, function: Callable[[np.ndarray], np.ndarray]) -> None:
        import torch
        from evotorch import Problem
        from evotorch.algorithms import CEM, PGPE, SNES, XNES

        torch.set_num_threads(1)
        self.batch: list[np.ndarray] = []

        def objective(xs: torch.Tensor) -> torch.Tensor:
            values = function(xs.detach().cpu().numpy().astype(np.float64))
            self.batch.append(values)
            return torch.as_tensor(values, dtype=torch.float64)

        problem = Problem("min", objective, solution_length=n, initial_bounds=(-1.0, 1.0), dtype=torch.float64,
                          vectorized=True, seed=seed)
        common = {"popsize": population, "stdev_init": sigma, "center_init": torch.as_tensor(x0, dtype=torch.float64)}
        self.used: dict = {}
        if algo == "snes":
            self.searcher = SNES(problem, **common)
        elif algo == "xnes":
            self.searcher = XNES(problem, **common)
        elif algo == "pgpe":
            # EvoTorch's PGPE has no default center_learning_rate nor stdev_learning_rate: the job's
            # settings (ours) are required; ClipUp's max_speed defaults to 2 * lr as in EvoTorch
            lr = settings["lr"]
            config = {"max_speed": settings["max_speed"]} if "max_speed" in settings else {}
            self.searcher = PGPE(problem, **common, center_learning_rate=lr,
                                 stdev_learning_rate=settings["scale_lr"], optimizer="clipup",
                                 optimizer_config=config)
            self.used.update(optimizer="clipup", lr=lr, max_speed=settings.get("max_speed", 2 * lr),
                             stdev_learning_rate=settings["scale_lr"], stdev_max_change=0.2,
                             ranking="centered")
        elif algo == "cem":
            self.searcher = CEM(problem, **common, parenthood_ratio=settings["elite_ratio"])
            self.used["parenthood_ratio"] = settings["elite_ratio"]
        else:
            raise ValueError(f"EvoTorch has no {algo!r} here (it has cem, pgpe, snes, xnes)")
        self.used["class"] = f"evotorch.algorithms.{type(self.searcher).__name__}"
        if algo in ("snes", "xnes"):
            self.used["stdev_learning_rate"] = self.searcher._stdev_learning_rate
            self.used["center_learning_rate"] = self.searcher._center_learning_rate

    def step(self) -> np.ndarray:
        self.batch.clear()
        self.searcher.step()
        return np.concatenate(self.batch)

    def center(self) -> np.ndarray:
        """The center after the last update (EvoTorch's step updates from the previous
        generation, then samples: the newest generation is not in it yet)."""
        return self.searcher.status["center"].detach().cpu().numpy().astype(np.float64)


class Evox:
    """An EvoX 1.4 algorithm in its ``StdWorkflow``, driven one ``step()`` (sample + evaluate +
    update) at a time; the problem is our function. float64 (torch's default dtype here)."""

    def __init__(self, algo: str, n: int, population: int, sigma: float, x0: np.ndarray, seed: int,
                 settings: dict, function: Callable[[np.ndarray], np.ndarray]) -> None:
        import torch
        import torch._dynamo

        torch._dynamo.config.disable = True  # CMAES's torch.cond fails under dynamo (torch 2.13)
        torch.set_default_dtype(torch.float64)
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        from evox.algorithms import ARS, CMAES, SNES, XNES, OpenES
        from evox.core import Problem
        from evox.workflows import StdWorkflow

        self.batch: list[np.ndarray] = []
        batch = self.batch

        class Objective(Problem):
            def evaluate(self, pop: torch.Tensor) -> torch.Tensor:
                values = function(pop.detach().cpu().numpy().astype(np.float64))
                batch.append(values)
                return torch.as_tensor(values, dtype=torch.float64)

        center = torch.as_tensor(x0, dtype=torch.float64)
        self.used: dict = {}
        transform = None
        if algo == "snes":
            weights = settings.get("weights", "temp")  # EvoX's default: temperature weights
            algorithm = SNES(population, center, sigma=sigma, weight_type=weights)
            self.used.update(weight_type=weights, lrate_mean=float(algorithm.lrate_mean),
                             lrate_sigma=float(algorithm.lrate_sigma))
        elif algo == "xnes":
            algorithm = XNES(center, sigma**2 * torch.eye(n), pop_size=population)
            self.used.update(learning_rate_mean=float(algorithm.learning_rate_mean),
                             learning_rate_var=float(algorithm.learning_rate_var),
                             learning_rate_B=float(algorithm.learning_rate_B))
        elif algo == "cma-es":
            algorithm = CMAES(center, sigma, pop_size=population)
            self.used.update(c_c=float(algorithm.c_c), c_1=float(algorithm.c_1), c_mu=float(algorithm.c_mu),
                             c_sigma=float(algorithm.c_sigma), d_sigma=float(algorithm.d_sigma),
                             decomp_per_iter=int(algorithm.decomp_per_iter))
        elif algo == "openai-es":
            # EvoX's OpenES has no default learning rate: the job's (ours) is required
            algorithm = OpenES(population, center, learning_rate=settings["lr"], noise_stdev=sigma)
            shaping = settings.get("shaping", "raw")
            if shaping == "centered_ranks":
                transform = centered_ranks_module()
            elif shaping != "raw":
                raise ValueError(f"shaping is raw or centered_ranks, not {shaping!r}")
            self.used.update(optimizer="sgd", lr=settings["lr"], mirrored=True, shaping=shaping)
        elif algo == "ars":
            lr = settings.get("lr", 0.05)  # EvoX's defaults: lr 0.05, elite_ratio 0.1
            elite_ratio = settings["top_directions"] / (population // 2) if "top_directions" in settings else 0.1
            algorithm = ARS(population, center, elite_ratio=elite_ratio, lr=lr, sigma=sigma)
            self.used.update(optimizer="sgd", lr=lr, top_directions=algorithm.elite_pop_size)
        else:
            raise ValueError(f"EvoX has no {algo!r} here (it has ars, cma-es, openai-es, snes, xnes)")
        self.used["class"] = f"evox.algorithms.{type(algorithm).__name__}"
        self.workflow = StdWorkflow(algorithm, Objective(), fitness_transform=transform)

    def step(self) -> np.ndarray:
        self.batch.clear()
        self.workflow.step()
        return np.concatenate(self.batch)

    def center(self) -> np.ndarray:
        algorithm = self.workflow.algorithm
        center = algorithm.center if hasattr(algorithm, "center") else algorithm.mean
        return center.detach().cpu().numpy().astype(np.float64).reshape(-1)


def centered_ranks_module():
    """A ``torch.nn.Module`` mapping f to its ranks on [-0.5, 0.5] (lowest f -0.5), for EvoX's
    workflow: our OpenAI-ES shaping (Salimans et al. 2017), which EvoX's OpenES lacks."""
    import torch

    class CenteredRanksModule(torch.nn.Module):
        def forward(self, fitness: torch.Tensor) -> torch.Tensor:
            ranks = torch.argsort(torch.argsort(fitness)).to(fitness.dtype)
            return ranks / (fitness.numel() - 1) - 0.5

    return CenteredRanksModule()


CACHE: dict = {}  # the job's evosax strategy, shared by its seeds


def run(job: dict, seed: int, x0: list) -> tuple[dict, dict]:
    n, population, budget = job["dim"], job["population"], job["budget"]
    function = make_function(job["function"], n, job.get("rotation"))
    settings = job.get("settings") or {}
    unknown = set(settings) - SETTINGS
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(SETTINGS)}")
    start = np.asarray(x0, dtype=np.float64)
    if job["library"] == "evosax":
        if "evosax" not in CACHE:
            CACHE["evosax"] = Evosax(job["algo"], n, population, job["sigma"], settings)
        es = CACHE["evosax"]
        es.start(start, seed)

        def generation() -> np.ndarray:
            values = function(es.ask())
            es.tell(values)
            return values
    elif job["library"] == "evotorch":
        es = EvoTorch(job["algo"], n, population, job["sigma"], start, seed, settings, function)
        generation = es.step
    elif job["library"] == "evox":
        es = Evox(job["algo"], n, population, job["sigma"], start, seed, settings, function)
        generation = es.step
    else:
        raise ValueError(f"unknown library {job['library']!r}: evosax, evotorch or evox")
    evaluations, best, curve = 0, math.inf, []
    while evaluations < budget:
        values = generation()
        evaluations += len(values)
        best = min(best, float(np.min(values)))
        curve.append((evaluations, best))
        if best < job["target"]:
            break
    return {"evaluations": evaluations, "curve": curve, "center_f": float(function(es.center()))}, es.used


def main() -> None:
    job = json.load(sys.stdin)
    runs, used = [], {}
    out, sys.stdout = sys.stdout, sys.stderr  # EvoTorch logs to stdout; the reply alone goes there
    try:
        for r in job["runs"]:
            result, used = run(job, r["seed"], r["x0"])
            runs.append(result)
    finally:
        sys.stdout = out
    function = make_function(job["function"], job["dim"], job.get("rotation"))
    values = function(np.asarray(job["points"], dtype=np.float64)).tolist() if job.get("points") else []
    json.dump({"runs": runs, "values": values, "used": used}, sys.stdout)


if __name__ == "__main__":
    main()
