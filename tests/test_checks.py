"""core/checks.py: one convention for argument validators. TypeError for a wrong type (bool is
not a number), ValueError for a wrong value, a message that names the argument and what was
expected; the old import paths give the same functions."""

import numpy as np
import pytest
import torch

from pytorch_es.core import checks
from pytorch_es.core.checks import (
    check_decay,
    check_device,
    check_fraction,
    check_int,
    check_population_size,
    check_positive,
    check_reward,
    check_timeout,
)


def test_positive_accepts_numbers_and_returns_floats():
    assert check_positive("sigma", 2) == 2.0 and isinstance(check_positive("sigma", 2), float)
    assert check_positive("lr", 0, allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (True, TypeError, "sigma must be a number, got bool"),
        ("0.1", TypeError, "sigma must be a number, got str"),
        (None, TypeError, "sigma must be a number, got NoneType"),
        (torch.tensor(0.1), TypeError, "sigma must be a number, got Tensor"),
        (float("nan"), ValueError, "sigma must be finite, got nan"),
        (float("inf"), ValueError, "sigma must be finite, got inf"),
        (0, ValueError, "sigma must be > 0, got 0.0"),
        (-1.5, ValueError, "sigma must be > 0, got -1.5"),
    ],
)
def test_positive_refuses(value, error, message):
    with pytest.raises(error) as info:
        check_positive("sigma", value)
    assert str(info.value) == message


def test_positive_allow_zero_message():
    with pytest.raises(ValueError, match=r"^lr must be >= 0, got -0.1$"):
        check_positive("lr", -0.1, allow_zero=True)


def test_fraction_and_decay_bounds():
    assert check_fraction("elite_ratio", 1) == 1.0
    assert check_decay("sigma_decay", 0.99) == 0.99
    with pytest.raises(ValueError, match=r"^elite_ratio must be in \(0, 1\), got 1.0$"):
        check_fraction("elite_ratio", 1.0, closed=False)
    with pytest.raises(ValueError, match=r"^decay must be in \(0, 1\], got 1.01$"):
        check_decay("decay", 1.01)
    with pytest.raises(ValueError, match=r"^decay must be > 0, got 0.0$"):
        check_decay("decay", 0.0)
    with pytest.raises(TypeError, match="decay must be a number, got bool"):
        check_decay("decay", True)


def test_int_accepts_ints_numpy_ints_and_none_when_allowed():
    assert check_int("workers", 3) == 3
    value = check_int("workers", np.int64(3))
    assert value == 3 and type(value) is int
    assert check_int("generations", 0, 0) == 0
    assert check_int("workers", None, allow_none=True) is None


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (True, {}, TypeError, "workers must be an int >= 1, got bool (True)"),
        (2.0, {}, TypeError, "workers must be an int >= 1, got float (2.0)"),
        ("2", {}, TypeError, "workers must be an int >= 1, got str ('2')"),
        (None, {}, TypeError, "workers must be an int >= 1, got NoneType (None)"),
        (False, {"allow_none": True}, TypeError, "workers must be an int >= 1 or None, got bool (False)"),
        (0, {}, ValueError, "workers must be an int >= 1, got 0"),
        (0, {"allow_none": True}, ValueError, "workers must be an int >= 1 or None, got 0"),
        (-1, {"minimum": 0}, ValueError, "workers must be an int >= 0, got -1"),
    ],
)
def test_int_refuses(value, kwargs, error, message):
    with pytest.raises(error) as info:
        check_int("workers", value, **kwargs)
    assert str(info.value) == message


def test_timeout():
    assert check_timeout(None) is None
    assert check_timeout(3) == 3.0 and isinstance(check_timeout(3), float)
    with pytest.raises(TypeError, match=r"^timeout must be a number of seconds or None, got bool$"):
        check_timeout(True)
    with pytest.raises(TypeError, match=r"^start_timeout must be a number of seconds or None, got str$"):
        check_timeout("5", "start_timeout")
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^timeout must be a positive number of seconds or None, got "):
            check_timeout(bad)


def test_population_size():
    assert check_population_size(2) == 2
    with pytest.raises(TypeError, match=r"^population_size must be an int, got bool$"):
        check_population_size(True)
    with pytest.raises(TypeError, match=r"^population_size must be an int, got float$"):
        check_population_size(8.0)
    with pytest.raises(ValueError, match=r"^population_size must be >= 4, got 3$"):
        check_population_size(3, minimum=4)


def test_device():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    for bad in (True, 1.5, None, ["cpu"]):
        with pytest.raises(TypeError, match=r"^device must be a str or torch.device"):
            check_device(bad)
    with pytest.raises(ValueError, match=r"^device='no-such-device' cannot be used here"):
        check_device("no-such-device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
            check_device("cuda")


def test_reward():
    assert check_reward(1, 0) == 1.0
    assert check_reward(torch.tensor([2.5]), 0) == 2.5
    assert check_reward(np.float32(0.5), 0) == 0.5
    with pytest.raises(TypeError, match=r"^reward of member 3 must be a real number, got bool \(True\)$"):
        check_reward(True, 3)
    with pytest.raises(TypeError, match=r"^reward of member 3 must be a real number, got str \('1'\)$"):
        check_reward("1", 3)
    with pytest.raises(TypeError, match=r"^reward of member 1 is a tensor of shape \(2,\); expected a single number$"):
        check_reward(torch.zeros(2), 1)
    with pytest.raises(ValueError, match=r"^reward of the test run is nan; rewards must be finite$"):
        check_reward(float("nan"), "the test run")
    with pytest.raises(ValueError, match=r"^reward of member 0 is -inf; rewards must be finite$"):
        check_reward(torch.tensor(-float("inf")), 0)


def test_old_import_paths_give_the_same_functions():
    from pytorch_es.evaluation import pool
    from pytorch_es.strategies import base, openai_es

    for name in ("check_positive", "check_fraction", "check_decay", "check_population_size", "check_device",
                 "check_reward"):
        assert getattr(base, name) is getattr(checks, name)
    for name in ("check_positive", "check_decay", "check_population_size"):
        assert getattr(openai_es, name) is getattr(checks, name)
    assert pool.check_timeout is checks.check_timeout


def test_evaluators_follow_the_convention():
    from pytorch_es.evaluation import ProcessEvaluator, ThreadEvaluator, make_evaluator

    with pytest.raises(TypeError, match=r"^threads \(threadcount\) must be an int >= 1, got float"):
        ThreadEvaluator(2.0)
    with pytest.raises(ValueError, match=r"^threads \(threadcount\) must be an int >= 1, got 0$"):
        ThreadEvaluator(0)
    with pytest.raises(TypeError, match=r"^workers must be an int >= 1 or None, got bool"):
        make_evaluator("processes", workers=True)
    with pytest.raises(TypeError, match=r"^max_crashes must be an int >= 1, got str"):
        ProcessEvaluator(1, max_crashes="3")
    with pytest.raises(ValueError, match=r"^chunks_per_worker must be an int >= 1, got 0$"):
        ProcessEvaluator(1, chunks_per_worker=0)
