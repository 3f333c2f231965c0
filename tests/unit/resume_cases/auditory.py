"""Resume cases of the auditory trainers (see test_every_trainer_resumes.py)."""

_DATA = ("neurofit.synthetic_strf", dict(n_neurons=3, n_bands=6, n_lags=4, n_train_clips=6, n_validation_clips=2,
                                          n_test_clips=2, n_repeats=3, clip_bins=30, batch_size=4))

CASES = {
    "neurofit.auditory": (
        _DATA,
        ("neurofit.strf_ln", dict(n_lags=4)),
        dict(max_epochs=4, lr=0.01, patience=1, tolerance=1e-4, lr_decay_steps=1, loss="poisson"),
        2,
    ),
    "neurofit.ridge_strf": (
        _DATA,
        ("neurofit.strf_linear", dict(n_lags=4)),
        dict(lambdas=[1.0, 10.0, 100.0, 1000.0]),
        2,
    ),
}
