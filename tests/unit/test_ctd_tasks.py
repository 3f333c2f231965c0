"""NBFF and MultiTask environments: trial logic, loss mask, batches."""

import numpy as np
import pytest

from neurofit.datasets.ctd_tasks import build_multitask, build_nbff, nbff_mask, nbff_trials


def test_nbff_targets_follow_the_last_pulse():
    trials = nbff_trials(np.random.default_rng(0), 50, 3, 60, 0.05, 0.0)
    pulses, targets = trials["true_inputs"], trials["targets"]
    assert np.all(pulses[:, :3] == 0)
    state = np.zeros((50, 3))
    for t in range(60):  # slow reference: step through the flip-flop
        state = np.where(pulses[:, t] == 1, 1.0, np.where(pulses[:, t] == -1, 0.0, state))
        np.testing.assert_array_equal(targets[:, t], state)
    assert np.array_equal(trials["inputs"], pulses)  # noise 0


def test_nbff_mask_blind_after_transitions_and_at_start():
    targets = np.zeros((1, 20, 2), np.float32)
    targets[0, 8:, 0] = 1.0  # bit 0 flips at step 8
    mask = nbff_mask(targets, transition_blind=4, start_blind=5)
    assert np.all(mask[0, :5] == 0)
    np.testing.assert_array_equal(mask[0, 5:, 0], [1, 1, 1, 0, 0, 0, 0] + [1] * 8)
    assert np.all(mask[0, 5:, 1] == 1)  # the other bit is unaffected


def test_nbff_bundle_batches_and_determinism():
    a = build_nbff(0, n_bits=2, timesteps=30, n_train=20, n_validation=10, batch_size=8)
    b = build_nbff(7, n_bits=2, timesteps=30, n_train=20, n_validation=10, batch_size=8)
    batch = next(iter(a.loaders["validation"]["all"]))
    assert set(batch) == {"inputs", "targets", "weights"}
    assert batch["inputs"].shape == (8, 30, 2) and batch["weights"].shape == (8, 30, 2)
    assert a.info.modality == "sequence" and set(a.info.provides) == {"targets", "mask"}
    other = next(iter(b.loaders["validation"]["all"]))
    assert np.array_equal(batch["inputs"].numpy(), other["inputs"].numpy())  # trials depend on data_seed only
    with pytest.raises(ValueError, match="switch_prob"):
        build_nbff(0, switch_prob=0.9)


def test_multitask_pro_anti_and_memory():
    bundle = build_multitask(0, timesteps=60, n_train=40, n_validation=20)
    batch = next(iter(bundle.loaders["train"]["all"]))
    inputs, targets, weights = (batch[k].numpy() for k in ("inputs", "targets", "weights"))
    assert inputs.shape[-1] == 7 and targets.shape[-1] == 3
    go = (inputs[..., 0] < 0.5).argmax(1)  # fixation input (noisy) drops at the go cue
    for i in range(len(inputs)):
        rule = inputs[i, 0, 3:].argmax()
        stim = inputs[i, :, 1:3]
        angle_in = np.arctan2(*stim[np.abs(stim).sum(1).argmax()][::-1])
        resp = targets[i, -1, 1:]
        angle_out = np.arctan2(resp[1], resp[0])
        turn = np.angle(np.exp(1j * (angle_out - angle_in)))
        assert abs(abs(turn) - (np.pi if rule in (1, 3) else 0)) < 0.5  # anti tasks answer opposite
        assert weights[i, -1, 0] == 5 and weights[i, go[i], 0] == 0
    with pytest.raises(ValueError, match="choose distinct names"):
        build_multitask(0, tasks=("go",))
