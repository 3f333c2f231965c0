import sys
import textwrap

import pytest

from neurofit.pipelines import registry
from neurofit.pipelines.registry import RegistryError, register, resolve


def build_tiny(data_info, seed, *, hidden=8, layers=2, activation="elu"):
    return (hidden, layers, activation)


def build_required(data_info, seed, *, hidden):
    return hidden


register("model", "tests.tiny")(build_tiny)
register("model", "tests.required")(build_required)


def test_builtins_are_registered():
    assert "neurofit.gaussian_cnn" in registry.available("model")
    assert "neurofit.synthetic_responses" in registry.available("dataset")
    assert "neurofit.poisson" in registry.available("trainer")


def test_defaults_are_filled_and_explicit_defaults_match():
    builder = resolve("model", "tests.tiny")
    assert builder.complete_config({}) == {"hidden": 8, "layers": 2, "activation": "elu"}
    assert builder.complete_config({"hidden": 8}) == builder.complete_config({})
    assert builder.complete_config({"layers": 4})["layers"] == 4


def test_unknown_and_missing_arguments_are_named():
    with pytest.raises(RegistryError, match=r"unknown argument\(s\) \['hiden'\]"):
        resolve("model", "tests.tiny").complete_config({"hiden": 3})
    with pytest.raises(RegistryError, match=r"missing required argument\(s\) \['hidden'\]"):
        resolve("model", "tests.required").complete_config({})


@pytest.mark.parametrize("name", ["os.system", "subprocess.run", "builtins.eval", "system", "__import__"])
def test_names_outside_the_registry_are_rejected(name):
    with pytest.raises(RegistryError, match="no model builder named"):
        resolve("model", name)


def test_unsafe_looking_names_are_rejected_before_lookup():
    with pytest.raises(RegistryError, match="must be 1-64 characters"):
        resolve("model", "os.system('rm -rf /')")


def test_registering_os_system_fails():
    import os

    for kind in registry.KINDS:
        with pytest.raises(RegistryError, match="part of Python itself"):
            register(kind, "evil.system")(os.system)
        assert "evil.system" not in registry.available(kind)


def test_name_clash_is_an_error_but_reregistering_the_same_function_is_not():
    def other(data_info, seed, *, x=1):
        return x

    register("model", "tests.tiny")(build_tiny)  # same function again: fine
    with pytest.raises(RegistryError, match="already registered"):
        register("model", "tests.tiny")(other)


@pytest.mark.parametrize(
    "function, fragment",
    [
        (lambda seed, **kw: None, "signature"),
        (lambda data_info, seed, *args: None, "*args"),
        (lambda data_info, seed, **kwargs: None, "*kwargs"),
        (lambda data_info: None, "signature"),
    ],
)
def test_builder_signatures_are_checked(function, fragment):
    with pytest.raises(RegistryError, match=fragment.replace("*", r"\*")):
        register("model", "tests.bad")(function)


def test_dotted_paths_resolve_only_under_allowed_prefixes(tmp_path, monkeypatch):
    package = tmp_path / "mylab_models_xyz"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            def build_net(data_info, seed, *, width=4):
                return width
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "mylab_models_xyz.build_net"
    with pytest.raises(RegistryError, match="no model builder named"):
        resolve("model", name)
    assert "mylab_models_xyz" not in sys.modules  # rejected without importing anything
    monkeypatch.setenv(registry.ALLOWED_MODULES_ENV, "mylab_models_xyz")
    assert resolve("model", name).complete_config({}) == {"width": 4}
    # A prefix must match whole module names: "mylab_models" does not allow "mylab_models_xyz".
    monkeypatch.setenv(registry.ALLOWED_MODULES_ENV, "mylab_models")
    with pytest.raises(RegistryError):
        resolve("model", name)


def test_unknown_kind():
    with pytest.raises(RegistryError, match="unknown builder kind"):
        resolve("optimizer", "x")
