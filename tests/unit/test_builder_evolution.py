"""A builder gains a hyperparameter: existing rows keep their keys (hash policy, version 1)."""

import pytest

from neurofit.pipelines import hashing, registry
from neurofit.pipelines.registry import RegistryError, register
from neurofit.schemas.config import Dataset


def _release_1(seed, *, n_neurons: int = 10):
    return None


def _release_2(seed, *, n_neurons: int = 10, noise: float = 0.0):
    """Release 2 adds ``noise``; its default 0.0 is what release 1 did."""
    return None


def test_an_added_hyperparameter_at_its_default_keeps_old_keys(monkeypatch):
    monkeypatch.setitem(registry._registry["dataset"], "tests.evolving", _release_1)
    old_key, old_stored = Dataset.key_for("tests.evolving", {"n_neurons": 5})
    assert old_stored == {"n_neurons": 5}

    # The lab's next release: the same name now names the function with the extra hyperparameter.
    monkeypatch.delitem(registry._registry["dataset"], "tests.evolving")
    register("dataset", "tests.evolving", added=("noise",))(_release_2)
    for spelled in ({"n_neurons": 5}, {"n_neurons": 5, "noise": 0.0}):
        key, stored = Dataset.key_for("tests.evolving", spelled)
        assert key == old_key and stored == old_stored  # re-adding the old config finds its row
    other, stored = Dataset.key_for("tests.evolving", {"n_neurons": 5, "noise": 0.1})
    assert other != old_key and stored == {"n_neurons": 5, "noise": 0.1}
    # An int where the default is a float is a different value, as everywhere in the hash policy.
    assert Dataset.key_for("tests.evolving", {"n_neurons": 5, "noise": 0})[0] != old_key
    # The builder still receives every hyperparameter: defaults fill the stored config in.
    assert registry.resolve("dataset", "tests.evolving").complete_config(old_stored) == {"n_neurons": 5, "noise": 0.0}
    assert hashing.HASH_VERSION == 1


def test_an_added_hyperparameter_needs_a_default():
    def builder(seed, *, n_neurons: int = 10, noise: float):
        return None

    with pytest.raises(RegistryError, match="added hyperparameter 'noise' must be a keyword with a default"):
        register("dataset", "tests.evolving_bad", added=("noise",))(builder)
