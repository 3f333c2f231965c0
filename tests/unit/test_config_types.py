"""Hyperparameter annotations are enforced at insert (`Builder.validate`), without changing any key.

This module uses ``from __future__ import annotations`` on purpose: the builders' annotations
are strings, as in most lab code, and must still be resolved and enforced.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import textwrap
import typing
from typing import Literal, Optional

import numpy as np
import pytest

from neurofit.pipelines import config_types, hashing, registry
from neurofit.pipelines.registry import RegistryError, register, resolve

if typing.TYPE_CHECKING:
    from some_lab_only_module import LabThing  # never importable: that annotation is not enforced


def build_typed(
    data_info,
    seed,
    *,
    layers: int = 3,
    lr: float = 1e-3,
    amp: bool = True,
    name: str = "a",
    mode: Literal["full", "diag"] = "full",
    clip: float | None = None,
    kernel: Optional[int] = None,  # noqa: UP045  (the old spelling must work too)
    sizes: tuple[int, ...] = (8, 16),
    pair: tuple[int, str] = (1, "x"),
    grid: list[list[float]] = [[0.5]],  # noqa: B006  (never mutated)
    table: dict[str, int] = {},  # noqa: B006
    loose: dict = {},  # noqa: B006
    frames: collections.abc.Sequence[int] = (1,),
    anything: typing.Any = None,
    untyped=0,
    lab: LabThing = None,
    implicit: float = None,  # noqa: RUF013  (implicit Optional, as in older lab code)
):
    return None


register("model", "tests.typed")(build_typed)


@pytest.fixture
def typed():
    return resolve("model", "tests.typed")


def refused(builder, config) -> str:
    with pytest.raises(RegistryError) as error:
        builder.validate(config)
    return str(error.value)


def test_string_annotations_are_resolved_and_unresolvable_ones_are_skipped(typed):
    assert typed.types["layers"] is int and typed.types["clip"] == (float | None)
    assert "untyped" not in typed.types and "lab" not in typed.types  # not enforced, not an error
    assert typed.validate({"lab": object.__name__, "untyped": [1, "x"]})["untyped"] == [1, "x"]


def test_max_epochs_as_a_string_names_the_hyperparameter_the_type_and_the_value():
    message = refused(resolve("trainer", "neurofit.poisson"), {"max_epochs": "1"})
    assert "hyperparameter 'max_epochs' must be int, got '1' (str)" in message
    assert "write it without quotes" in message


def test_hidden_channels_eight_is_refused():
    message = refused(resolve("model", "neurofit.gaussian_cnn"), {"hidden_channels": "eight"})
    assert "'hidden_channels' must be int, got 'eight' (str)" in message


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({"layers": True}, "'layers' must be int, got True (bool): write a number"),
        ({"layers": 3.0}, "'layers' must be int, got 3.0 (float): write 3, without a decimal point"),
        ({"lr": "1e-3"}, "'lr' must be float (an int is accepted), got '1e-3' (str): write it without quotes"),
        ({"lr": False}, "'lr' must be float"),
        ({"amp": 1}, "'amp' must be bool, got 1 (int)"),
        ({"name": 5}, "'name' must be str, got 5 (int)"),
        ({"mode": "Full"}, "'mode' must be one of 'full', 'diag', got 'Full'"),
        ({"clip": "0.5"}, "'clip' must be float (an int is accepted) or None, got '0.5'"),
        ({"kernel": 2.5}, "'kernel' must be int or None, got 2.5"),
        ({"sizes": [8, "16"]}, "'sizes' must be tuple[int, ...] (a list is accepted), got [8, '16']"),
        ({"sizes": 8}, "'sizes' must be tuple[int, ...]"),
        ({"pair": [1, "x", 2]}, "'pair' must be tuple[int, str] (a list is accepted)"),
        ({"pair": ["x", 1]}, "'pair' must be tuple[int, str]"),
        ({"grid": [[0.5], [1, "a"]]}, "'grid' must be list[list[float]]"),
        ({"grid": [0.5]}, "'grid' must be list[list[float]]"),
        ({"table": {"a": 1.5}}, "'table' must be dict[str, int]"),
        ({"loose": [1]}, "'loose' must be dict, got [1] (list)"),
        ({"frames": "abc"}, "'frames' must be Sequence[int], got 'abc' (str)"),
        ({"implicit": "x"}, "'implicit' must be float"),
    ],
)
def test_mistyped_values_are_refused_with_a_clear_message(typed, config, fragment):
    message = refused(typed, config)
    assert message.startswith("config for model 'tests.typed': hyperparameter ")
    assert fragment in message


def test_every_problem_is_named_at_once(typed):
    message = refused(typed, {"layers": "3", "amp": "yes", "lr": None})
    assert all(f"'{name}'" in message for name in ("layers", "amp", "lr"))


@pytest.mark.parametrize(
    "config",
    [
        {"layers": 4, "lr": 0.5, "amp": False, "name": "b", "mode": "diag"},
        {"lr": 1},  # an int for a float: accepted
        {"clip": None, "kernel": None, "implicit": None},  # Optional, and a None default
        {"clip": 2, "kernel": 5},
        {"sizes": [1, 2, 3], "pair": [2, "y"], "frames": [4, 5]},  # lists for tuples/sequences
        {"sizes": (), "grid": [], "table": {"a": 1}, "loose": {"x": [1]}},
        {"layers": np.int64(2), "lr": np.float32(0.25), "amp": np.bool_(True), "name": np.str_("c")},
        {"sizes": np.array([1, 2]), "grid": np.array([[0.5, 1.0]])},
        {"anything": {"a": [1, None]}},
    ],
)
def test_well_typed_values_are_accepted(typed, config):
    typed.validate(config)


def test_type_checks_never_change_a_value_so_no_key_changes(typed):
    """validate() returns what complete_config() always returned: same values, same types."""
    for config in ({"lr": 1}, {"lr": 1.0}, {"sizes": (1, 2)}, {"layers": np.int64(2)}):
        checked, plain = typed.validate(config), typed.complete_config(config)
        assert hashing.config_hash(checked) == hashing.config_hash(plain)
        assert all(type(checked[k]) is type(plain[k]) for k in config)
    # 1 stays an int: "lr": 1 and "lr": 1.0 keep the two different keys they always had.
    assert typed.validate({"lr": 1})["lr"] == 1 and type(typed.validate({"lr": 1})["lr"]) is int
    assert hashing.config_hash(typed.validate({"lr": 1})) != hashing.config_hash(typed.validate({"lr": 1.0}))


def _given_defaults(builder) -> dict:
    return {k: v for k, v in builder.defaults.items() if v is not inspect.Parameter.empty}


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_registered_builder_accepts_its_own_defaults(kind):
    for name in registry.available(kind):
        builder = resolve(kind, name)
        defaults = _given_defaults(builder)
        assert config_types.problems(defaults, builder.types, builder.defaults) == [], name
        required = {k: _sample(builder.types.get(k)) for k in builder.defaults if k not in defaults}
        builder.validate({**defaults, **required})


def _sample(annotation) -> object:
    """A value a required hyperparameter accepts (a path for video_trials, say)."""
    if annotation is None:
        return "x"
    return next(v for v in ("/data/x", 1, 1.5, True, [], {}, None) if config_types.matches(v, annotation))


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_builtin_hyperparameter_is_annotated_and_enforced(kind):
    for name in registry.available(kind):
        if name.startswith("neurofit."):
            builder = resolve(kind, name)
            assert set(builder.types) == set(builder.defaults), f"{name}: unresolved annotations"


@pytest.mark.parametrize(
    "kind, name, config",
    [  # configs used by the demos, notebooks and README
        ("dataset", "neurofit.synthetic_responses", {"n_neurons": 40}),
        ("dataset", "neurofit.video_trials", {"path": "/data/x", "subsequence_length": 40, "burn_in": 10, "batch_size": 8}),
        ("dataset", "neurofit.synthetic_dlgn", {"n_train_clips": 48, "subsequence_length": 40, "burn_in": 10}),
        ("model", "neurofit.gaussian_cnn", {"hidden_channels": 8, "layers": 2}),
        ("model", "neurofit.factorized_3d", {"hidden_channels": 8, "layers": 2}),
        ("model", "neurofit.conv_gru", {"hidden_channels": 8, "feature_layers": 1}),
        ("trainer", "neurofit.poisson", {"max_epochs": 60, "lr": 0.02, "patience": 5, "grad_clip": 10.0}),
    ],
)
def test_configs_of_the_demos_and_notebooks_pass(kind, name, config):
    resolve(kind, name).validate(config)


def test_unknown_keys_of_different_types_are_named_not_a_type_error():
    with pytest.raises(RegistryError, match=r"unknown argument\(s\) \[1, 'a'\]"):
        resolve("model", "neurofit.gaussian_cnn").complete_config({1: 2, "a": 3})


def test_a_module_that_fails_at_import_gives_a_registry_error(tmp_path, monkeypatch):
    (tmp_path / "nf_zerodiv_lab.py").write_text(textwrap.dedent("""
        1 / 0
        def train(model, data, seed, context, *, epochs=1):
            return None
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.ALLOWED_MODULES_ENV, "nf_zerodiv_lab")
    try:
        with pytest.raises(RegistryError) as error:
            resolve("trainer", "nf_zerodiv_lab.train")
        assert "importing module 'nf_zerodiv_lab' failed with ZeroDivisionError: division by zero" in str(error.value)
        with pytest.raises(RegistryError, match="ZeroDivisionError"):
            registry.requirements("trainer", "nf_zerodiv_lab.train")  # what a worker calls at start-up
    finally:
        sys.modules.pop("nf_zerodiv_lab", None)


def test_an_entry_point_that_fails_to_load_gives_a_registry_error(tmp_path, monkeypatch):
    info = tmp_path / "nf_broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nf-broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[neurofit.models]\nbroken.cnn = nf_broken_plugin:build\n")
    (tmp_path / "nf_broken_plugin.py").write_text("raise KeyError('missing setting')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(RegistryError, match=r"loading entry point 'nf_broken_plugin:build' failed with KeyError"):
            resolve("model", "broken.cnn")
    finally:
        sys.modules.pop("nf_broken_plugin", None)
