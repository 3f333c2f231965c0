"""Resume cases of neurofit's core trainers (see test_every_trainer_resumes.py)."""

import importlib.util
from pathlib import Path

from neurofit.pipelines import registry

_spec = importlib.util.spec_from_file_location("supervised_fixtures", Path(__file__).with_name("supervised_fixtures.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
for kind, name, function in (("dataset", "tests.resume_blobs", fixtures.build_blobs),
                             ("dataset", "tests.resume_sequences", fixtures.build_masked_sequences),
                             ("model", "tests.resume_linear", fixtures.build_linear)):
    if name not in registry.available(kind):
        registry.register(kind, name)(function)

CASES = {
    "neurofit.poisson": (
        ("neurofit.synthetic_responses", dict(n_neurons=6, n_train_images=64, n_validation_images=16,
                                              n_test_images=8, n_repeats=2, image_size=12, batch_size=16)),
        ("neurofit.gaussian_cnn", dict(hidden_channels=3, layers=1, input_kernel=5)),
        dict(max_epochs=4, lr=0.01, patience=1, tolerance=1e-4, lr_decay_steps=1),
        2,
    ),
    "neurofit.supervised": (
        ("tests.resume_sequences", {}),
        ("tests.resume_linear", {}),
        dict(max_epochs=5, lr=0.05, patience=1, lr_decay_steps=3, grad_clip=1.0, weight_decay=1e-4),
        2,
    ),
}
