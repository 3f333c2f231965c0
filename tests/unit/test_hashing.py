import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurofit.pipelines.hashing import (
    ConfigError,
    config_hash,
    decode_config,
    encode_config,
    to_queryable,
)

GOLDEN = Path(__file__).with_name("golden_hashes.json")

# Every case here is pinned in golden_hashes.json: changing the hashing scheme must be a
# deliberate act (bump HASH_VERSION and regenerate with `python tests/unit/test_hashing.py`).
GOLDEN_CASES = {
    "empty": {},
    "int": {"x": 1},
    "float": {"x": 1.0},
    "str": {"x": "1"},
    "bool": {"x": True},
    "none": {"x": None},
    "nested": {"b": {"z": [1, 2.5, "a"], "a": None}, "a": False},
    "unicode": {"name": "Purkinje µ-cell"},
    "large_int": {"x": 2**70},
    "small_float": {"x": 1e-300, "y": -0.5},
    "array_f64": {"w": np.array([[1.0, 2.0], [3.0, 4.0]])},
    "array_i32": {"w": np.array([1, 2, 3], dtype=np.int32)},
    "array_bool": {"w": np.array([True, False])},
    "layers": {"hidden_channels": [16, 32], "kernel": 7, "gamma": 0.1, "elu": True},
}


def test_one_and_friends_all_differ():
    keys = {config_hash({"x": v}) for v in (1, 1.0, "1", True, None)}
    assert len(keys) == 5


def test_key_order_is_irrelevant_at_any_depth():
    a = {"a": 1, "b": {"x": 1, "y": [1, {"p": 1, "q": 2}]}}
    b = {"b": {"y": [1, {"q": 2, "p": 1}], "x": 1}, "a": 1}
    assert config_hash(a) == config_hash(b)


def test_list_order_matters():
    assert config_hash({"x": [1, 2]}) != config_hash({"x": [2, 1]})


def test_tuples_hash_as_lists():
    assert config_hash({"x": (1, 2)}) == config_hash({"x": [1, 2]})


def test_numpy_scalars_hash_as_python_values():
    assert config_hash({"x": np.int64(3)}) == config_hash({"x": 3})
    assert config_hash({"x": np.float32(0.5)}) == config_hash({"x": 0.5})
    assert config_hash({"x": np.bool_(True)}) == config_hash({"x": True})
    assert config_hash({"x": np.int64(1)}) != config_hash({"x": np.float64(1)})


def test_arrays_hash_by_dtype_shape_and_bytes():
    base = config_hash({"w": np.array([1, 2], dtype=np.int64)})
    assert base != config_hash({"w": [1, 2]})
    assert base != config_hash({"w": np.array([1, 2], dtype=np.int32)})
    assert base != config_hash({"w": np.array([1.0, 2.0])})
    assert base != config_hash({"w": np.array([[1, 2]], dtype=np.int64)})
    assert base != config_hash({"w": np.array([1, 3], dtype=np.int64)})
    big_endian = np.array([1, 2], dtype=">i8")
    assert base == config_hash({"w": big_endian})
    assert base == config_hash({"w": np.array([[1], [2]], dtype=np.int64)[:, 0]})  # non-contiguous


@pytest.mark.parametrize(
    "value, fragment",
    [
        (float("nan"), "NaN"),
        (float("inf"), "inf"),
        (print, "builtin_function_or_method"),
        (object(), "builtins.object"),
        ({1, 2}, "set"),
        (b"raw", "bytes"),
        (np.array(["a"]), "dtype <U1"),
    ],
)
def test_unsupported_values_are_rejected_with_their_path(value, fragment):
    with pytest.raises(ConfigError) as error:
        config_hash({"outer": {"inner": [0, value]}})
    assert "config['outer']['inner'][1]" in str(error.value)
    assert fragment in str(error.value)


def test_non_string_keys_and_reserved_key_are_rejected():
    with pytest.raises(ConfigError, match="key 1 of type int"):
        config_hash({1: "a"})
    with pytest.raises(ConfigError, match="reserved"):
        config_hash({"__ndarray__": 1})
    with pytest.raises(ConfigError, match="must be a dict"):
        encode_config([1, 2])


def test_round_trip_is_exact():
    config = {"a": 1, "b": 1.0, "c": "1", "d": True, "e": None, "f": [1, [2.5]],
              "w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    back = decode_config(encode_config(config).encode())
    assert back["a"] == 1 and type(back["a"]) is int
    assert back["b"] == 1.0 and type(back["b"]) is float
    assert back["c"] == "1" and back["d"] is True and back["e"] is None
    assert back["w"].dtype == np.float32 and back["w"].shape == (2, 3)
    np.testing.assert_array_equal(back["w"], config["w"])
    assert config_hash(back) == config_hash(config)


def test_queryable_form_is_plain_json():
    plain = to_queryable({"w": np.array([1.5, 2.5]), "t": (1, 2)})
    assert plain == {"w": [1.5, 2.5], "t": [1, 2]}
    json.dumps(plain)


def _current_golden():
    return {name: config_hash(config) for name, config in GOLDEN_CASES.items()}


def test_golden_hashes_hold():
    assert json.loads(GOLDEN.read_text()) == _current_golden()


def test_hashes_do_not_depend_on_the_process_or_pythonhashseed():
    code = (
        "import json, sys; sys.path.insert(0, %r); import test_hashing as t; "
        "print(json.dumps(t._current_golden()))" % str(Path(__file__).parent)
    )
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] == json.loads(GOLDEN.read_text())


if __name__ == "__main__":  # regenerate the golden file (deliberately)
    GOLDEN.write_text(json.dumps(_current_golden(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
