"""dnn-to-brain tables on a real database: model RDM sets, ROI and searchlight RDMs, fits, winners, maps.

Model RDMs here are made from the scenes' ground-truth features (plus noise), so the right
answer is known without training; one untrained encoder goes through neurofit's probing and
RDM tables to check that members copied from `RDM` rows are those rows.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.io import savemat

pytestmark = pytest.mark.db

N = 30  # scenes: 435 RDM pairs
GROUPS = {"pixels": "2D", "edges": "2D", "depth": "3D", "category": "semantic"}
REGIONS = {"evc": {"edges": 1.0, "pixels": 0.5}, "depth_roi": {"depth": 1.0}, "category_roi": {"category": 1.0}}


@pytest.fixture(scope="module")
def tables(db):
    from neurofit import schemas

    schemas.activate(os.environ["NEUROFIT_PREFIX"], extra_schemas=["neurofit.schemas.dnn2brain"])
    from neurofit.schemas import dnn2brain

    yield dnn2brain
    # The session's teardown drops neurofit's schema; MariaDB refuses while rows of this lab
    # schema still reference it, so this module removes what it made (cascading to every fit).
    for table in (dnn2brain.RegionSet, dnn2brain.ModelRDMSet, dnn2brain.SearchlightRDMs):
        (table & f"{table.primary_key[0]} LIKE 'd2b%%'").delete(prompt=False)


@pytest.fixture(scope="module")
def scenes(tables):
    from neurofit import schemas
    from neurofit.datasets.scenes import render_scenes, scene_features

    shown = render_scenes(N, seed=77)
    features = scene_features(shown)
    schemas.StimulusSet.add("d2b_scenes", shown.images, description="dnn2brain test scenes")
    return shown, features


def _feature_rdms(features, rng):
    """Two 'layers' per 'network': the feature's RDM and a noisier copy of it."""
    from neurofit.pipelines.analysis.brain_rdms import correlation_rdms

    out = {}
    for name in GROUPS:
        x = features[name] + 0.05 * rng.standard_normal(features[name].shape)
        clean = correlation_rdms(np.concatenate([x, 0.3 * rng.standard_normal((len(x), 4))], axis=1))
        out[name] = {"early": clean + 0.05 * rng.standard_normal(clean.shape), "late": clean}
    return out


@pytest.fixture(scope="module")
def analysed(tables, scenes):
    from neurofit import schemas
    from neurofit.pipelines.analysis.brain_rdms import synthetic_roi_rdms

    _, features = scenes
    rng = np.random.default_rng(5)
    nets = _feature_rdms(features, rng)
    members = [{"network": f"{name}_net", "layer": layer, "group": GROUPS[name], "rdm": values}
               for name, layers in nets.items() for layer, values in layers.items()]
    tables.ModelRDMSet.add("d2b_features", "d2b_scenes", members, description="feature networks")
    brain = synthetic_roi_rdms(features, REGIONS, n_subjects=5, n_voxels=60, noise=1.0, seed=2)
    for region, subjects in brain.items():
        schemas.ReferenceRDM.add(f"d2b_{region}", "d2b_scenes", subjects={f"s{i}": s for i, s in enumerate(subjects)})
    tables.RegionSet.add("d2b_rois", "d2b_features", [f"d2b_{r}" for r in REGIONS], rsa_params="quick")
    schemas.populate(["RSARegression", "VariancePartition", "RegionWinner"], display_progress=False,
                     suppress_errors=False)
    return {"nets": nets, "brain": brain}


def test_regression_matches_numpy_least_squares(tables, analysed):
    key = {"model_rdm_set": "d2b_features", "reference_rdm": "d2b_depth_roi"}
    row = (tables.RSARegression.Network & key & {"network": "depth_net"}).fetch1()
    subjects = analysed["brain"]["depth_roi"]
    x = np.column_stack([np.ones(subjects.shape[1]), analysed["nets"]["depth"]["early"], analysed["nets"]["depth"]["late"]])
    for y, stored in zip(subjects, row["r2_subjects"]):  # s0..s4 sort like the subjects
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        r2 = 1 - np.sum((y - x @ beta) ** 2) / np.sum((y - y.mean()) ** 2)
        assert abs(stored - r2) < 1e-10
    assert row["n_layers"] == 2 and row["model_group"] == "3D"
    ceiling = (tables.RSARegression & key).fetch1("noise_ceiling_lower", "noise_ceiling_upper")
    assert 0 < ceiling[0] < ceiling[1] <= 1


def test_partition_matches_subset_fits_and_whole_groups_leave(tables, analysed):
    key = {"model_rdm_set": "d2b_features", "reference_rdm": "d2b_depth_roi", "rsa_params": "quick"}
    nets = analysed["nets"]
    y = analysed["brain"]["depth_roi"][0]

    def adjusted(columns):
        x = np.column_stack([np.ones(len(y)), *columns])
        resid = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
        r2 = 1 - resid @ resid / np.sum((y - y.mean()) ** 2)
        return 1 - (1 - r2) * (len(y) - 1) / (len(y) - x.shape[1])

    grouped = {"2D": [(nets["pixels"][lay] + nets["edges"][lay]) / 2 for lay in ("early", "late")],
               "3D": [nets["depth"][lay] for lay in ("early", "late")],
               "semantic": [nets["category"][lay] for lay in ("early", "late")]}
    everything = adjusted([c for g in grouped.values() for c in g])
    for group, row in {r["model_group"]: r for r in (tables.VariancePartition.Group & key).to_dicts()}.items():
        others = [c for g, cols in grouped.items() if g != group for c in cols]
        assert abs(row["unique_subjects"][0] - (everything - adjusted(others))) < 1e-10
    partition = (tables.VariancePartition & key).fetch1()
    assert partition["best_group"] == "3D"
    assert len(tables.VariancePartition.Subset & key) == 7


def test_winners_pick_the_matching_group(tables, analysed):
    winners = {r["reference_rdm"]: r for r in (tables.RegionWinner.Region & {"region_set": "d2b_rois"}).to_dicts()}
    assert winners["d2b_depth_roi"]["best_network"] == "depth_net"
    assert winners["d2b_depth_roi"]["best_group"] == "3D" and winners["d2b_depth_roi"]["significant"]
    assert winners["d2b_category_roi"]["best_network"] == "category_net"
    assert winners["d2b_category_roi"]["best_group"] == "semantic"
    assert winners["d2b_evc"]["best_group"] == "2D"
    depth = {r["model_group"]: r["unique_variance"]
             for r in (tables.VariancePartition.Group & {"reference_rdm": "d2b_depth_roi"}).to_dicts()}
    assert depth["3D"] >= 3 * max(depth["2D"], depth["semantic"], 1e-12)


def test_members_from_neurofit_rdm_rows(tables, scenes):
    from neurofit import schemas

    dataset = schemas.Dataset.add("neurofit.scenes", {"task": "depth", "n_train": 32, "n_validation": 16, "n_test": 16})
    model = schemas.Model.add("neurofit.scene_encoder", {"channels": [4, 4, 8]})
    trainer = schemas.Trainer.add("neurofit.supervised", {"max_epochs": 0})
    trained = schemas.TrainingSelection.add_grid(dataset, model, trainer, [1])
    schemas.populate("TrainedModel", trained, display_progress=False, suppress_errors=False)
    schemas.ProbeSelection.add(trained, "d2b_scenes")
    keys = [{**k, "stimulus_set": "d2b_scenes"} for k in trained]
    schemas.populate(["Activations", "RDM"], keys, display_progress=False, suppress_errors=False)
    members = tables.rdm_members({"untrained": ("3D", trained[0])}, "d2b_scenes", ["block3", "output"])
    tables.ModelRDMSet.add("d2b_untrained", "d2b_scenes", members)
    stored = (tables.ModelRDMSet.Member & {"model_rdm_set": "d2b_untrained", "layer": "block3"}).fetch1()
    original = (schemas.RDM & keys[0] & {"layer": "block3", "rdm_method": "correlation"}).fetch1("rdm").load()
    np.testing.assert_array_equal(stored["rdm"].load(), original)
    assert stored["source"]["rdm"]["layer"] == "block3"
    # The same name with the same content is the same set; other content is refused.
    assert tables.ModelRDMSet.add("d2b_untrained", "d2b_scenes", members) == {"model_rdm_set": "d2b_untrained"}
    with pytest.raises(ValueError, match="exists with other members"):
        tables.ModelRDMSet.add("d2b_untrained", "d2b_scenes", members[:1])


def test_malformed_files_insert_nothing(tables, scenes, tmp_path):
    import nibabel

    from neurofit import schemas
    from neurofit.datasets.fmri_rdms import RDMFileError

    rng = np.random.default_rng(0)
    good = 1 - np.corrcoef(rng.standard_normal((N, 6)))
    savemat(tmp_path / "wrong_key.mat", {"subject_rdms": np.stack([good, good])})
    with pytest.raises(RDMFileError, match=r"wrong_key.mat: field 'subject_rdm': missing"):
        tables.import_roi_rdms("d2b_bad_roi", "d2b_scenes", tmp_path / "wrong_key.mat")
    savemat(tmp_path / "non_square.mat", {"subject_rdm": np.zeros((2, N, N - 1))})
    with pytest.raises(RDMFileError, match="is not square"):
        tables.import_roi_rdms("d2b_bad_roi", "d2b_scenes", tmp_path / "non_square.mat")
    assert not schemas.ReferenceRDM & {"reference_rdm": "d2b_bad_roi"}
    assert not schemas.ReferenceRDM.Subject & {"reference_rdm": "d2b_bad_roi"}

    # A model set whose last member's file is malformed: none of its members is inserted.
    savemat(tmp_path / "model_ok.mat", {"rdm": good})
    savemat(tmp_path / "model_bad.mat", {"rdm": good[:, :-1]})
    members = [{"network": "a", "layer": "l", "group": "2D", "path": tmp_path / "model_ok.mat"},
               {"network": "b", "layer": "l", "group": "3D", "path": tmp_path / "model_bad.mat"}]
    with pytest.raises(RDMFileError, match="model_bad.mat: field 'rdm'"):
        tables.ModelRDMSet.add("d2b_bad_set", "d2b_scenes", members)
    assert not tables.ModelRDMSet & {"model_rdm_set": "d2b_bad_set"}
    assert not tables.ModelRDMSet.Member & {"model_rdm_set": "d2b_bad_set"}

    # Searchlights whose mask gives another number of searchlights than the RDMs have.
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1:3, 1:3, 1] = 1
    nibabel.Nifti1Image(mask, np.eye(4)).to_filename(str(tmp_path / "mask.nii"))
    np.save(tmp_path / "all_sub_slrdms.npy", np.broadcast_to(good, (2, 3, N, N)).copy())
    with pytest.raises(RDMFileError, match=r"mask.nii: field 'mask': gives 4 searchlights .* has 3"):
        tables.SearchlightRDMs.import_files("d2b_bad_sl", "d2b_scenes", tmp_path / "all_sub_slrdms.npy",
                                            tmp_path / "mask.nii", layout="voxels")
    assert not tables.SearchlightRDMs & {"searchlight_rdms": "d2b_bad_sl"}


def test_roi_import_and_searchlight_maps(tables, scenes, analysed, tmp_path):
    import nibabel

    from neurofit import schemas
    from neurofit.pipelines.analysis.brain_rdms import synthetic_searchlight_rdms

    _, features = scenes
    # The seed's ROI layout round-trips through the importer into ReferenceRDM.Subject.
    rows, cols = np.triu_indices(N, 1)
    square = np.zeros((3, N, N))
    square[:, rows, cols] = analysed["brain"]["evc"][:3]
    square += np.swapaxes(square, 1, 2)
    savemat(tmp_path / "evc.mat", {"subject_rdm": square})
    tables.import_roi_rdms("d2b_evc_file", "d2b_scenes", tmp_path / "evc.mat")
    stored = (schemas.ReferenceRDM.Subject & {"reference_rdm": "d2b_evc_file", "subject": "sub02"}).fetch1("rdm").load()
    np.testing.assert_allclose(stored, analysed["brain"]["evc"][1])

    regions = {"depth_roi": REGIONS["depth_roi"], "category_roi": REGIONS["category_roi"]}
    lights = synthetic_searchlight_rdms(features, regions, {"depth_roi": (0.2, 0.5, 0.5), "category_roi": (0.8, 0.5, 0.5)},
                                        shape=(8, 4, 3), width=0.15, n_subjects=4, n_voxels=40, noise=0.5, seed=1)
    square = np.zeros((*lights["rdms"].shape[:2], N, N), np.float32)
    square[..., rows, cols] = lights["rdms"]
    square += np.swapaxes(square, -1, -2)
    np.save(tmp_path / "all_sub_slrdms.npy", square)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nibabel.Nifti1Image(lights["mask"].astype(np.uint8), affine).to_filename(str(tmp_path / "mask.nii"))
    tables.SearchlightRDMs.import_files("d2b_lights", "d2b_scenes", tmp_path / "all_sub_slrdms.npy",
                                        tmp_path / "mask.nii", layout="voxels")
    key = {"model_rdm_set": "d2b_features", "searchlight_rdms": "d2b_lights", "rsa_params": "quick"}
    schemas.populate(["SearchlightFit", "SearchlightMap"], key, display_progress=False, suppress_errors=False)
    fit = (tables.SearchlightFit & key).fetch1()
    groups = fit["model_groups"]
    expected = np.array([groups.index({"depth_roi": "3D", "category_roi": "semantic"}[r]) for r in regions])[lights["truth"]]
    winners = fit["winner_group"].load()
    assert np.mean(winners == expected) > 0.8
    paths = tables.SearchlightMap.export_nifti(key, tmp_path / "maps")
    assert {p.name for p in paths} >= {"winner_group.nii.gz", "adjusted_r2_depth_net.nii.gz", "unique_3D.nii.gz"}
    image = nibabel.load(str(tmp_path / "maps" / "winner_group.nii.gz"))
    np.testing.assert_allclose(image.affine, affine)
    volume = np.asarray(image.dataobj)
    np.testing.assert_array_equal(volume[lights["mask"]], winners + 1)
    assert np.isnan(volume[~lights["mask"]]).all()
