"""Resume case of the Computation-Through-Dynamics trainer (see test_every_trainer_resumes.py)."""

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

from neurofit.datasets import ctd_files, spike_simulation

# Cases are built at collection, in each pytest-xdist process: each writes a file of its own.
_FOLDER = Path(tempfile.mkdtemp(prefix="neurofit_resume_ctd_"))
atexit.register(shutil.rmtree, _FOLDER, True)
_PATH = _FOLDER / "spikes.h5"


def _write() -> str:
    rng = np.random.default_rng(0)
    latents = np.cumsum(rng.normal(0, 0.3, (24, 16, 4)), axis=1)
    sim = spike_simulation.simulate_spikes(latents, n_heldin=6, n_heldout=2, seed=0)
    sim["n_heldin"] = 6
    run = {"train": {"latents": latents[:16], "inputs": rng.normal(size=(16, 16, 2))},
           "validation": {"latents": latents[16:], "inputs": rng.normal(size=(8, 16, 2))}}
    ctd_files.write_ctd_h5(_PATH, spike_simulation.ctd_arrays(run, sim))
    return str(_PATH)


CASES = {
    "neurofit.latent_poisson": (
        ("neurofit.ctd_spikes", dict(path=_write(), batch_size=8)),
        ("neurofit.sae", dict(latent_size=3, encoder_size=6, dropout=0.1)),
        dict(max_epochs=4, lr=1e-2, patience=1, lr_decay_steps=2),
        2,
    ),
}
