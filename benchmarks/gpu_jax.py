"""The JAX side-by-side of ``benchmarks/gpu.py``: evosax 0.3 OpenES on gymnax CartPole-v1.

The same workload as ours: a 4-64-2 tanh MLP (``x @ W + b``, argmax of the two
logits), one episode per member, OpenAI-ES with antithetic sampling and centered ranks,
sigma 0.1, Adam(0.01), from a center drawn like pytorch-es's initial MLP. A generation
(ask, every member's episode, tell) is one jitted function: ``vmap`` over members of a
``lax.scan`` over the 500 steps of CartPole-v1's step limit; all members start from the
same reset key (common random numbers, as in pytorch-es). gymnax resets a finished env
and the scan runs on, so the figures are given twice: env-steps/s counting only the
steps of running episodes (comparable with pytorch-es, which stops stepping when every
episode has ended) and counting every step the scan computed (population x 500).

    python benchmarks/gpu_jax.py --populations 1000,10000,100000 --json jax.json

matplotlib and seaborn, imported by gymnax and evosax for rendering only, are replaced
by empty stand-ins when they are not installed (the GPU machine has neither).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import time
import types


class _Stub(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub(f"{self.__name__}.{name}")

    def __call__(self, *args, **kwargs):
        return _Stub(f"{self.__name__}()")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an attribute-tolerant empty module for every import under ``roots``."""

    def __init__(self, roots: set[str]) -> None:
        self.roots = roots

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


_missing = {root for root in ("matplotlib", "seaborn") if importlib.util.find_spec(root) is None}
if _missing:
    sys.meta_path.append(_StubFinder(_missing))

import gymnax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from evosax.algorithms import Open_ES  # noqa: E402

OBS, HIDDEN, ACTIONS = 4, 64, 2
DIM = OBS * HIDDEN + HIDDEN + HIDDEN * ACTIONS + ACTIONS  # 450, pytorch-es's flat layout
STEPS = 500


def policy(flat: jax.Array, obs: jax.Array) -> jax.Array:
    w1 = flat[: OBS * HIDDEN].reshape(OBS, HIDDEN)
    b1 = flat[OBS * HIDDEN : OBS * HIDDEN + HIDDEN]
    rest = flat[OBS * HIDDEN + HIDDEN :]
    w2 = rest[: HIDDEN * ACTIONS].reshape(HIDDEN, ACTIONS)
    b2 = rest[HIDDEN * ACTIONS :]
    logits = jnp.tanh(obs @ w1 + b1) @ w2 + b2
    return jnp.argmax(logits)


def initial_center(key: jax.Array) -> jax.Array:
    """pytorch-es's MLP initialisation: U(+-1/sqrt(fan_in)) per layer, the output layer x 0.1
    (the same distribution, JAX's random numbers)."""
    k1, k2 = jax.random.split(key)
    first = jax.random.uniform(k1, (OBS * HIDDEN + HIDDEN,), minval=-1.0, maxval=1.0) / jnp.sqrt(OBS)
    second = jax.random.uniform(k2, (HIDDEN * ACTIONS + ACTIONS,), minval=-1.0, maxval=1.0) / jnp.sqrt(HIDDEN)
    return jnp.concatenate([first, 0.1 * second])


def make_generation(population_size: int):
    env, env_params = gymnax.make("CartPole-v1")
    es = Open_ES(population_size=population_size, solution=jnp.zeros(DIM), optimizer=optax.adam(0.01),
                 std_schedule=optax.constant_schedule(0.1))
    params = es.default_params

    def episode(flat: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        reset_key, step_key = jax.random.split(key)
        obs, state = env.reset(reset_key, env_params)

        def step(carry, k):
            obs, state, ret, length, done = carry
            action = policy(flat, obs)
            obs, state, reward, terminated, truncated, _ = env.step(k, state, action, env_params)
            live = 1.0 - done
            ended = jnp.maximum(terminated, truncated).astype(jnp.float32)
            return (obs, state, ret + reward * live, length + live, jnp.maximum(done, ended)), None

        keys = jax.random.split(step_key, STEPS)
        carry, _ = jax.lax.scan(step, (obs, state, 0.0, 0.0, 0.0), keys)
        return carry[2], carry[3]

    @jax.jit
    def generation(state, key):
        ask_key, env_key, tell_key = jax.random.split(key, 3)
        population, state = es.ask(ask_key, state, params)
        returns, lengths = jax.vmap(episode, in_axes=(0, None))(population, env_key)
        state, _ = es.tell(tell_key, population, -returns, state, params)  # evosax minimises
        return state, returns.mean(), lengths.sum()

    def init(key):
        return es.init(key, initial_center(key), params)

    return init, generation


def main() -> None:
    if sys.argv[1:] == ["--probe"]:  # benchmarks/gpu.py: do the imports work here?
        print(jax.default_backend())
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--debug", action="store_true", help="raise errors instead of reporting them")
    args = parser.parse_args()
    rows = []
    print(f"JAX {jax.__version__} on {jax.devices()[0]}", flush=True)
    for n in [int(p) for p in args.populations.split(",") if p]:
        try:
            init, generation = make_generation(n)
            key = jax.random.PRNGKey(0)
            state = init(key)
            start = time.perf_counter()
            for k in range(2):  # the 2nd call may trace again (the state's counter becomes an array)
                state, _, steps = generation(state, jax.random.PRNGKey(100 + k))
                jax.block_until_ready(state)
            compile_s = time.perf_counter() - start
            best = None
            for r in range(args.repeats):
                start = time.perf_counter()
                state, _, steps = generation(state, jax.random.PRNGKey(2 + r))
                jax.block_until_ready(state)
                wall = time.perf_counter() - start
                if best is None or wall < best[0]:
                    best = (wall, int(steps))
        except Exception as error:  # out of memory at the largest sizes
            if "--debug" in sys.argv:
                raise
            print(f"evosax+gymnax population {n:,}: failed ({type(error).__name__}: {str(error)[:200]})", flush=True)
            rows.append({"population": n, "skipped": f"{type(error).__name__}: {str(error)[:200]}"})
            continue
        wall, live = best
        row = {"population": n, "wall": wall, "live_steps": live, "compile_s": compile_s,
               "live_steps_per_s": live / wall, "computed_steps_per_s": n * STEPS / wall}
        rows.append(row)
        print(f"evosax+gymnax CartPole-v1 4-64-2 population {n:>9,}: {row['live_steps_per_s']:>14,.0f} env-steps/s "
              f"({live:,} episode steps, {wall * 1e3:.1f} ms per generation; {row['computed_steps_per_s']:,.0f} "
              f"counting all {STEPS} scan steps; compile {compile_s:.1f} s)", flush=True)
        save(args.json, rows)
    save(args.json, rows)


def save(path: str | None, rows: list[dict]) -> None:
    """Write what was measured so far (a run stopped by a timeout keeps it)."""
    if path:
        with open(path, "w") as handle:
            json.dump({"jax": jax.__version__, "device": str(jax.devices()[0]), "throughput": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
