"""Importers of the published dnn-to-brain layout, checked on tiny files made here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from neurofit.datasets import fmri_rdms
from neurofit.datasets.fmri_rdms import RDMFileError


def _rdm(rng, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 5))
    return 1.0 - np.corrcoef(x)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_model_and_roi_rdms_round_trip(tmp_path, rng):
    model = _rdm(rng, 6)
    savemat(tmp_path / "depth_block4.mat", {"rdm": model})
    subjects = np.stack([_rdm(rng, 6) for _ in range(3)])
    savemat(tmp_path / "V1.mat", {"subject_rdm": subjects})
    condensed = fmri_rdms.load_model_rdm(tmp_path / "depth_block4.mat")
    rows, cols = np.triu_indices(6, 1)
    np.testing.assert_allclose(condensed, model[rows, cols])
    roi = fmri_rdms.load_roi_rdms(tmp_path / "V1.mat", n_conditions=6)
    assert roi.shape == (3, 15)
    np.testing.assert_allclose(roi[2], subjects[2][rows, cols])


@pytest.mark.parametrize("content, match", [
    ({"rdms": np.eye(4)}, r"field 'rdm': missing .*'rdms'"),
    ({"rdm": np.zeros((4, 5))}, r"field 'rdm': RDM of shape \(4, 5\) is not square"),
    ({"rdm": np.triu(np.ones((4, 4)), 1)}, "not symmetric"),
    ({"rdm": np.full((4, 4), np.nan)}, "NaN"),
    ({"rdm": np.zeros((2, 4, 4))}, "not one \\(n, n\\) RDM"),
])
def test_malformed_model_rdm_is_refused(tmp_path, content, match):
    path = tmp_path / "bad.mat"
    savemat(path, content)
    with pytest.raises(RDMFileError, match=match) as error:
        fmri_rdms.load_model_rdm(path)
    assert str(path) in str(error.value)


def test_malformed_roi_rdms_are_refused(tmp_path, rng):
    path = tmp_path / "roi.mat"
    savemat(path, {"subject_rdm": _rdm(rng, 5)})
    with pytest.raises(RDMFileError, match=r"roi.mat: field 'subject_rdm': has shape \(5, 5\), not \(n_subjects"):
        fmri_rdms.load_roi_rdms(path)
    savemat(path, {"subject_rdm": np.stack([_rdm(rng, 5)] * 2)})
    with pytest.raises(RDMFileError, match="has 5 conditions, expected 6"):
        fmri_rdms.load_roi_rdms(path, n_conditions=6)
    with pytest.raises(RDMFileError, match="no such file"):
        fmri_rdms.load_roi_rdms(tmp_path / "missing.mat")


def _mask(tmp_path, mask: np.ndarray):
    import nibabel

    path = tmp_path / "mask.nii"
    nibabel.save(nibabel.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def test_searchlights_with_block_and_voxel_layouts(tmp_path, rng):
    mask = np.zeros((6, 6, 4), bool)
    mask[1:5, 1:5, 1:3] = True
    blocks = fmri_rdms.searchlight_blocks(mask, sl_rad=1, max_blk_edge=2)
    assert len(blocks) > 0 and blocks.shape[1:] == (2, 3)
    rdms = np.stack([[_rdm(rng, 5) for _ in range(len(blocks))] for _ in range(2)])
    np.save(tmp_path / "all_sub_slrdms.npy", rdms)
    data = fmri_rdms.load_searchlight_rdms(tmp_path / "all_sub_slrdms.npy", _mask(tmp_path, mask))
    assert data.rdms.shape == (2, len(blocks), 10) and data.layout == "blocks"
    np.testing.assert_allclose(data.affine[0, 0], 2.0)
    volume = fmri_rdms.searchlight_volume(np.arange(len(blocks)), data.voxels, mask.shape)
    assert np.isfinite(volume).any() and np.nanmax(volume) == len(blocks) - 1

    voxelwise = np.stack([[_rdm(rng, 5) for _ in range(mask.sum())] for _ in range(2)])
    np.save(tmp_path / "voxels.npy", voxelwise)
    data = fmri_rdms.load_searchlight_rdms(tmp_path / "voxels.npy", tmp_path / "mask.nii", layout="voxels")
    volume = fmri_rdms.searchlight_volume(np.ones(mask.sum()), data.voxels, mask.shape)
    np.testing.assert_array_equal(np.isfinite(volume), mask)


def test_malformed_searchlights_are_refused(tmp_path, rng):
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    mask_path = _mask(tmp_path, mask)
    wrong_count = np.stack([[_rdm(rng, 4) for _ in range(int(mask.sum()) + 1)]])
    np.save(tmp_path / "sl.npy", wrong_count)
    with pytest.raises(RDMFileError, match=r"mask.nii: field 'mask': gives 8 searchlights \(voxels layout\) but sl.npy has 9"):
        fmri_rdms.load_searchlight_rdms(tmp_path / "sl.npy", mask_path, layout="voxels")
    np.save(tmp_path / "sl.npy", np.zeros((1, 8, 4, 3)))
    with pytest.raises(RDMFileError, match="not square"):
        fmri_rdms.load_searchlight_rdms(tmp_path / "sl.npy", mask_path, layout="voxels")
    np.save(tmp_path / "sl.npy", np.zeros((8, 4, 4)))
    with pytest.raises(RDMFileError, match=r"not \(n_subjects, n_searchlights, n, n\)"):
        fmri_rdms.load_searchlight_rdms(tmp_path / "sl.npy", mask_path)
    (tmp_path / "broken.nii").write_bytes(b"not a nifti")
    np.save(tmp_path / "sl.npy", np.stack([[_rdm(rng, 4) for _ in range(8)]]))
    with pytest.raises(RDMFileError, match="broken.nii: not a readable NIfTI"):
        fmri_rdms.load_searchlight_rdms(tmp_path / "sl.npy", tmp_path / "broken.nii", layout="voxels")
