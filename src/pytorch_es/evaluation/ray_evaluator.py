"""Ray actors: the same worker pool, from one machine to a cluster.

The center is put into Ray's object store once per generation (``ray.put``); each
actor fetches it from its node's store (one transfer per node, shared by the actors
there) and gets, per generation, only the scalars of a
:class:`~pytorch_es.evaluation.wire.GenerationSetup` and its member index ranges.
Actors are created with ``max_restarts=0``: the pool itself replaces a dead actor,
so it can count crashes per member and re-run exactly the lost chunk.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import torch

from pytorch_es.core.checks import check_int, check_positive
from pytorch_es.evaluation import listening
from pytorch_es.evaluation.backend import Event, WorkerBackend, WorkerGoneError
from pytorch_es.evaluation.processes import available_cores
from pytorch_es.evaluation.scheduler import PoolEvaluator
from pytorch_es.evaluation.wire import GenerationSetup, Task, center_bytes, center_from_bytes
from pytorch_es.evaluation.worker import WorkerRuntime


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:  # pragma: no cover - ray is an optional extra
        raise ImportError(
            "the ray backend needs Ray: pip install 'pytorch-es[ray]' (or pip install ray)"
        ) from error
    return ray


# Ray (2.60, Linux) rewrites a node address of "127.0.0.1"/"localhost" into the machine's
# routable address (ray._private.services.resolve_ip_for_localhost). Any other address in
# 127.0.0.0/8 is left alone and is still loopback on Linux, so a local instance pinned to it
# sends nothing beyond the loopback interface. macOS and Windows keep 127.0.0.1 as given
# (and have only 127.0.0.1 configured on their loopback interface).
LOOPBACK_NODE_IP = "127.0.0.1" if sys.platform in ("darwin", "win32") else "127.0.0.2"


class RayExposureError(PermissionError):
    """A locally started Ray would listen beyond loopback, and that was not allowed."""


SECURITY_DOC = "docs/cluster.md, section Security"


def _auth_mode() -> str:
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() or "unset"


def check_local_ray_listeners(before: set[int], allow_network: bool) -> list[listening.Listener]:
    """After ``ray.init`` started a local Ray: the listening sockets of its processes (its
    servers, its workers, and this driver's sockets that are new since ``before``) that are
    not on loopback. Raises :class:`RayExposureError` if there are some (or they cannot be
    checked on this platform) and ``allow_network`` is false; warns once if it is true."""
    if not listening.supported():
        if not allow_network:
            raise RayExposureError(
                f"cannot check which addresses a local Ray listens on here ({sys.platform}); Ray 2.60 binds "
                "its servers to all interfaces: pass allow_network=True (pytorch-es train --ray-allow-network) "
                f"to start it anyway, or connect to a cluster you secured (see {SECURITY_DOC})"
            )
        return []
    pid = os.getpid()
    exposed = [
        item
        for item in listening.listeners(listening.descendants(pid) | {pid}, exclude_inodes=before)
        if not item.loopback
    ]
    if not exposed:
        return []
    shown = ", ".join(str(item) for item in exposed[:4]) + (f" and {len(exposed) - 4} more" if len(exposed) > 4 else "")
    auth = _auth_mode()
    if not allow_network:
        raise RayExposureError(
            f"refusing to run a local Ray that listens beyond loopback ({shown}; RAY_AUTH_MODE={auth}): "
            "this Ray version cannot bind its servers to loopback only, so anyone who can reach this machine "
            "could reach them. Pass allow_network=True (pytorch-es train --ray-allow-network) to accept that, "
            f"use --backend processes on one machine, or connect to a cluster you secured (see {SECURITY_DOC})"
        )
    unauthenticated = " WITHOUT authentication (RAY_AUTH_MODE=disabled)" if auth == "disabled" else ""
    warnings.warn(
        f"the local Ray listens beyond loopback{unauthenticated}: {shown} (allowed by allow_network=True; "
        f"see {SECURITY_DOC})",
        RuntimeWarning,
        stacklevel=3,
    )
    return exposed


def is_loopback(address: str) -> bool:
    """Whether a Ray address (``host:port`` or ``ray://host:port``) points at this machine's loopback."""
    host = urlparse(address if "://" in address else f"ray://{address}").hostname or ""
    return host == "localhost" or host.startswith("127.")


class _RayWorker:
    """The actor: a :class:`WorkerRuntime` whose center comes from the object store."""

    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self.problem_ref: Any = None
        self.runtime = WorkerRuntime(self._fetch_center)

    def ready(self) -> dict:
        import ray

        pid = os.getpid()
        exposed = (
            [str(item) for item in listening.listeners({pid}) if not item.loopback] if listening.supported() else []
        )
        return {
            "pid": pid,
            "host": socket.gethostname(),
            "node": ray.get_runtime_context().get_node_id(),
            "exposed": exposed,  # this actor's listening sockets beyond loopback
        }

    @staticmethod
    def _fetch_center(setup: GenerationSetup) -> torch.Tensor:
        import ray

        data = ray.get(setup.center[0])  # a read-only view into the node's object store
        return center_from_bytes(memoryview(data), setup.center_dtype, setup.dim)

    def run(self, problem: list | None, setup: GenerationSetup | None, task: Task) -> tuple:
        import ray

        blob = None
        if problem is not None:
            try:
                blob = ray.get(problem[0])
            except Exception as error:
                return ("fatal", task.task_id, f"could not fetch the problem: {error}", "")
        return self.runtime.handle(blob, setup, task)


@dataclass(eq=False)
class _Actor:
    actor: Any
    ready_ref: Any
    task_ref: Any = None
    dead: bool = False


class _RayBackend(WorkerBackend):
    name = "Ray actor"

    def __init__(self, num_cpus_per_worker: float, threads_per_worker: int, owns_ray: bool) -> None:
        ray = _import_ray()
        self.ray = ray
        self.owns_ray = owns_ray
        self.actor_class = ray.remote(_RayWorker).options(
            num_cpus=num_cpus_per_worker, max_restarts=0, max_task_retries=0
        )
        self.threads_per_worker = threads_per_worker
        self.num_cpus_per_worker = num_cpus_per_worker
        self.center_ref: Any = None
        self.problem_blob: bytes | None = None
        self.problem_ref: Any = None
        self.actors: set[_Actor] = set()

    def spawn(self, slot: int) -> _Actor:
        actor = self.actor_class.remote(self.threads_per_worker)
        handle = _Actor(actor, actor.ready.remote())
        self.actors.add(handle)
        return handle

    def publish(self, center: torch.Tensor) -> list:
        self.center_ref = self.ray.put(center_bytes(center).numpy())
        return [self.center_ref]  # wrapped: Ray resolves only top-level arguments

    def send(
        self, handle: _Actor, problem_blob: bytes | None, setup: GenerationSetup | None, task: Task
    ) -> int:
        if handle.dead:
            raise WorkerGoneError("the actor is dead")
        problem = None
        if problem_blob is not None:
            if problem_blob is not self.problem_blob:  # one ray.put per problem
                self.problem_blob, self.problem_ref = problem_blob, self.ray.put(problem_blob)
            problem = [self.problem_ref]
        handle.task_ref = handle.actor.run.remote(problem, setup, task)
        return len(pickle.dumps((problem, setup, task), protocol=pickle.HIGHEST_PROTOCOL))

    def wait(self, handles: Sequence[_Actor], timeout: float | None) -> list[Event]:
        by_ref = {}
        for handle in handles:
            ref = handle.task_ref if handle.task_ref is not None else handle.ready_ref
            by_ref[ref] = handle
        if not by_ref:
            return []
        deadline = None if timeout is None else time.monotonic() + timeout
        refs = list(by_ref)
        while True:  # short slices so Ctrl-C is seen promptly
            left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=left)
            if ready or (deadline is not None and time.monotonic() >= deadline):
                break
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events = []
        for ref in ready:
            handle = by_ref[ref]
            is_ready_call = ref is handle.ready_ref and handle.task_ref is None
            try:
                value = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as error:
                handle.dead = True
                events.append(Event(handle, "died", f"Ray actor died: {first_line(error)}"))
                continue
            except self.ray.exceptions.RayError as error:
                handle.dead = True
                events.append(Event(handle, "died", f"Ray task failed: {first_line(error)}"))
                continue
            if is_ready_call:
                handle.ready_ref = None
                events.append(Event(handle, "ready", value))
            else:
                handle.task_ref = None
                events.append(Event(handle, "reply", value))
        return events

    def kill(self, handle: _Actor) -> None:
        handle.dead = True
        with contextlib.suppress(Exception):
            self.ray.kill(handle.actor, no_restart=True)
        self.actors.discard(handle)

    def start_hint(self) -> str:
        try:
            free = self.ray.available_resources().get("CPU", 0.0)
            total = self.ray.cluster_resources().get("CPU", 0.0)
        except Exception:  # pragma: no cover - Ray already down
            return ""
        return (
            f" (each actor needs num_cpus={self.num_cpus_per_worker:g}; the Ray cluster has "
            f"{free:g} of {total:g} CPUs free: fewer workers, or more nodes?)"
        )

    def shutdown(self) -> None:
        self.center_ref = self.problem_ref = self.problem_blob = None
        if self.owns_ray and self.ray.is_initialized():
            self.ray.shutdown()


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class RayEvaluator(PoolEvaluator):
    """Evaluates a population on ``workers`` Ray actors, locally or on a cluster.

    Args:
        workers: number of actors (default: the cluster's CPUs / ``num_cpus_per_worker``).
        address: a running cluster (``"HOST:PORT"`` of the head's GCS, or
            ``"ray://HOST:10001"``). ``None``: connect to the Ray already initialised
            in this process, else start a local one with ``num_cpus=workers``, node
            address on loopback, no dashboard (refused unless ``allow_network``: see
            below), shut down again by :meth:`close`.
        timeout: seconds one chunk may take before its actor is killed and replaced.
        max_crashes, chunks_per_worker, start_timeout: see
            :class:`~pytorch_es.evaluation.scheduler.PoolEvaluator`.
        num_cpus_per_worker: Ray CPUs reserved per actor (default 1).
        threads_per_worker: ``torch.set_num_threads`` in each actor (default 1).
        init_kwargs: extra ``ray.init`` arguments (e.g. ``runtime_env``), used only
            when this evaluator initialises Ray.
        allow_network: accept a locally started Ray whose servers listen beyond loopback.
            Ray 2.60 binds its GCS, raylet, worker and driver gRPC servers to all
            interfaces whatever the node address (there is no setting for it), so by
            default a local Ray is checked right after it starts (Linux: ``/proc``) and
            shut down again with :class:`RayExposureError` if any of its processes listens
            on a non-loopback address (on other platforms it is refused unchecked). A Ray
            this evaluator does not start (``address=``, or already initialised) is not
            checked: securing a cluster is its owner's job (docs/cluster.md, Security).

    An actor killed mid-generation is replaced and its members re-evaluated; see
    :mod:`pytorch_es.evaluation.scheduler`. The problem is pickled once (cloudpickle) and put
    into the object store once; its code must be importable on every node.
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        timeout: float | None = None,
        max_crashes: int = 3,
        chunks_per_worker: int = 2,
        num_cpus_per_worker: float = 1.0,
        threads_per_worker: int = 1,
        start_timeout: float = 120.0,
        init_kwargs: dict[str, Any] | None = None,
        allow_network: bool = False,
    ) -> None:
        workers = check_int("workers", workers, allow_none=True)
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"address (ray_address) must be a non-empty 'host:port' string, got {address!r}")
        check_positive("num_cpus_per_worker", num_cpus_per_worker)
        check_int("threads_per_worker", threads_per_worker)
        if not isinstance(allow_network, bool):
            raise TypeError(f"allow_network must be a bool, got {type(allow_network).__name__}")
        ray = _import_ray()
        owns_ray = started_locally = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if address is None:
                kwargs["num_cpus"] = workers if workers is not None else available_cores()
                kwargs["_node_ip_address"] = LOOPBACK_NODE_IP
            else:
                kwargs["address"] = address
                kwargs.pop("include_dashboard")
                if is_loopback(address):
                    kwargs["_node_ip_address"] = LOOPBACK_NODE_IP
            kwargs.update(init_kwargs or {})
            local = "address" not in kwargs
            before = listening.socket_inodes(os.getpid()) if local and listening.supported() else set()
            ray.init(**kwargs)
            owns_ray, started_locally = True, local
            if local:
                try:
                    check_local_ray_listeners(before, allow_network)
                except BaseException:
                    ray.shutdown()
                    raise
        elif address is not None:
            warnings.warn(
                f"Ray is already initialised in this process; address={address!r} is ignored "
                "(call ray.shutdown() first to connect elsewhere)",
                RuntimeWarning,
                stacklevel=2,
            )
        self.address = address
        if workers is None:
            cpus = float(ray.cluster_resources().get("CPU", 1))
            workers = max(1, int(cpus // num_cpus_per_worker))
        total = float(ray.cluster_resources().get("CPU", 0.0))
        if workers * num_cpus_per_worker > total:
            warnings.warn(
                f"{workers} Ray actors with num_cpus={num_cpus_per_worker:g} each need more CPUs than "
                f"the cluster has ({total:g}); some will wait for resources",
                RuntimeWarning,
                stacklevel=2,
            )
        self._check_actors = started_locally and not allow_network
        backend = _RayBackend(float(num_cpus_per_worker), threads_per_worker, owns_ray)
        try:
            super().__init__(
                backend,
                workers,
                timeout=timeout,
                max_crashes=max_crashes,
                chunks_per_worker=chunks_per_worker,
                start_timeout=start_timeout,
            )
        except Exception:
            backend.shutdown()
            raise

    def exposed_actors(self) -> list[str]:
        """Listening sockets beyond loopback that the ready actors reported (Linux)."""
        return [item for slot in self._slots for item in slot.info.get("exposed", ())]

    def _refuse_exposed_actors(self) -> None:
        """A local Ray whose servers passed the start-up check may still start actors that
        listen beyond loopback: refused in the same way, once they are ready."""
        if not self._check_actors:
            return
        exposed = self.exposed_actors()
        if exposed:
            self.close()
            raise RayExposureError(
                f"refusing to run Ray actors that listen beyond loopback ({', '.join(exposed[:4])}); pass "
                f"allow_network=True (pytorch-es train --ray-allow-network) to accept that (see {SECURITY_DOC})"
            )

    def start(self) -> None:
        super().start()
        self._refuse_exposed_actors()

    def evaluate(self, population: Any, problem: Any) -> Any:
        result = super().evaluate(population, problem)
        self._refuse_exposed_actors()
        return result

    def worker_pids(self) -> list[int]:
        """Process ids of the ready actors (on this machine only when local)."""
        return [s.info["pid"] for s in self._slots if "pid" in s.info and s.state in ("idle", "busy")]

    def __repr__(self) -> str:
        return f"RayEvaluator(workers={self.workers}, address={self.address!r}, timeout={self.timeout})"
