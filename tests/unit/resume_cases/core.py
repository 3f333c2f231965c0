"""Resume cases of neurofit's core trainers (see test_every_trainer_resumes.py)."""

CASES = {
    "neurofit.poisson": (
        ("neurofit.synthetic_responses", dict(n_neurons=6, n_train_images=64, n_validation_images=16,
                                              n_test_images=8, n_repeats=2, image_size=12, batch_size=16)),
        ("neurofit.gaussian_cnn", dict(hidden_channels=3, layers=1, input_kernel=5)),
        dict(max_epochs=4, lr=0.01, patience=1, tolerance=1e-4, lr_decay_steps=1),
        2,
    ),
}
