"""Gymnasium problems: vectorised population rollouts, policies, observation normalisation.

Public API (stable; the training loop and CLI build on it)::

    GymProblem(env_id, policy=None, *, episodes_per_member=1, max_steps=None,
               obs_norm=None, obs_clip=5.0, env_kwargs=None, vectorization="auto")
        # a pytorch_es.evaluation.Problem; picklable (envs are created lazily)
        .evaluate(population, indices) -> Evaluation(indices, rewards float64, env_steps, payload)
        .worker_state() / .load_worker_state(state) / .merge(evaluations)   # obs-norm stats
        .initial_center(seed=0) -> Tensor (P,)        .num_parameters -> int
        .episode_seeds(run_seed, generation) -> list[int]   # shared by all members (CRN)
        .evaluate_policy(vector, *, episodes=100, seed=1000, max_steps=None) -> Tensor float64
        .rollout_single(vector, seed, max_steps=None) -> (return, steps)
        .policy_config(**extra) -> dict (JSON)     .close()
        .env_id, .policy, .normalizer (ObservationNormalizer | None), .max_steps (settable),
        .episodes_per_member, .observation_space, .action_space,
        .vectorized  # True: env steps all sub-envs in numpy (CartPole) -> serial backend is best

    evaluate_policy(env_id, policy, vector, *, normalizer=None, episodes=100, seed=1000,
                    max_steps=None, env_kwargs=None) -> Tensor float64 (episodes,)
        # greedy returns on env seeds seed .. seed+episodes-1, all episodes in one batch
    rollout_single(env_id, policy, vector, *, seed, normalizer=None, max_steps=None,
                   env_kwargs=None) -> (return, steps)        # one gym.make env
    run_episode(env, policy, vector, *, seed, normalizer=None, max_steps=None,
                on_step=None) -> (return, steps)   # your env, e.g. render_mode="rgb_array"

    policy_config(env_id, policy, normalizer=None, **extra) -> dict   # -> policy.json
    from_config(config, tensors=None, *, source="weights") -> LoadedPolicy
        # .env_id .policy .normalizer .vector .config .evaluate(episodes, seed) .run_episode(env, seed)
        # tensors = safetensors.torch.load_file("policy.safetensors"); wrong names/shapes ->
        # ValueError showing both; weights are written as policy.named_parameters(center)
    save_policy(directory, problem, vector, problem_state=None, **extra) -> (weights, json) paths
    load_policy(directory) -> LoadedPolicy     # policy.json + policy.safetensors of a run directory

    Policy (ABC): .num_parameters, .forward(members (n, P), obs (n, obs_dim)) -> actions (n, ...),
        .initial_parameters(seed) -> (P,), .config() -> dict with "type",
        .bind(members) -> BoundPolicy (optional precompute), .named_parameters(vector) -> dict,
        .vector_from_named(tensors) -> (P,), .check_vector(vector), .describe(),
        .observation_space, .action_space
    MLPPolicy(observation_space, action_space, hidden=(64,), activation="tanh",
              action_mode="squash" | "clip", init_scale=0.1)
    make_policy(spec, observation_space, action_space) -> Policy
    register_policy(type_name, from_config_fn); policy_from_config(config) -> Policy
    ActionHead(action_space, action_mode="squash")   # outputs -> env actions, every policy's last step

    ObservationNormalizer(shape, clip=5.0, epsilon=1e-8): .normalize(obs), .update(batch),
        .merge_moments(count, mean, m2), .state_dict()/.load_state_dict(), .to_config()/.from_config()

    get_defaults(env_id) -> RLDefaults(population, sigma, lr, optimizer, hidden, activation,
        episodes, max_steps, generations, target, obs_norm, fitness_shaping, test_episodes)

    check_env_id(env_id), check_spaces(obs_space, act_space, env_id), make_env(env_id, ...),
    reward_threshold(env_id), make_batch(env_id, num_envs, ...)

A *policy* is any object with ``num_parameters``, a batched ``forward(members, obs)``
(row ``i`` of ``members`` acts on row ``i`` of ``obs``), ``initial_parameters`` and a
JSON ``config()``; :class:`MLPPolicy` is one, a Keras model wrapper can be another
(subclass :class:`Policy`, ``register_policy`` its type to rebuild it from json).

Modules: ``envs`` (env ids, spaces checks, sub-env batches), ``spaces`` (spaces <-> JSON,
the action head), ``policy`` (the interface and the registry of policy kinds), ``mlp``
(the MLP policy), ``kernels`` (its batched numpy forward), ``normalization``, ``rollout``,
``problem`` (``GymProblem``), ``artifact`` (``policy.json`` / ``policy.safetensors``),
``torch_problem`` / ``torch_envs`` (envs stepped in torch). ``policies`` re-exports the
policy names of their old home.
"""

from pytorch_es.rl.artifact import LoadedPolicy, from_config, load_policy, policy_config, save_policy
from pytorch_es.rl.defaults import DEFAULTS, GENERIC, RLDefaults, get_defaults
from pytorch_es.rl.envs import (
    check_env_id,
    check_spaces,
    make_batch,
    make_env,
    max_episode_steps,
    reward_threshold,
)
from pytorch_es.rl.mlp import MLPPolicy, make_policy
from pytorch_es.rl.normalization import ObservationNormalizer
from pytorch_es.rl.policy import BoundPolicy, Policy, policy_from_config, register_policy
from pytorch_es.rl.problem import GymProblem, episode_seeds, evaluate_policy, rollout_single
from pytorch_es.rl.rollout import rollout_batch, run_episode
from pytorch_es.rl.spaces import ActionHead
from pytorch_es.rl.torch_envs import TORCH_ENVS, TorchEnv, make_torch_env
from pytorch_es.rl.torch_problem import TorchEnvProblem

__all__ = [
    "DEFAULTS",
    "GENERIC",
    "TORCH_ENVS",
    "ActionHead",
    "BoundPolicy",
    "GymProblem",
    "LoadedPolicy",
    "MLPPolicy",
    "ObservationNormalizer",
    "Policy",
    "RLDefaults",
    "TorchEnv",
    "TorchEnvProblem",
    "check_env_id",
    "check_spaces",
    "episode_seeds",
    "evaluate_policy",
    "from_config",
    "get_defaults",
    "load_policy",
    "make_batch",
    "make_env",
    "make_policy",
    "make_torch_env",
    "max_episode_steps",
    "policy_config",
    "policy_from_config",
    "register_policy",
    "reward_threshold",
    "rollout_batch",
    "rollout_single",
    "run_episode",
    "save_policy",
]
