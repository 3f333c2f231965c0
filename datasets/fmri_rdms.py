"""Importers for the published dnn-to-brain layout (Dwivedi et al. 2021): model, ROI and searchlight RDMs.

* a model RDM: one ``.mat`` file per network x layer, key ``rdm``, shape (n, n);
* an ROI: one ``.mat`` file per region, key ``subject_rdm``, shape (n_subjects, n, n);
* searchlights: ``all_sub_slrdms.npy`` of shape (n_subjects, n_searchlights, n, n) with a
  brain ``mask.nii``. Searchlight ``i`` covers the ``i``-th block of `searchlight_blocks`
  (the seed's block layout: cubes of edge ``max_blk_edge`` on a grid over the mask, kept where
  their interior holds a mask voxel), or, with ``layout="voxels"``, the ``i``-th mask voxel.

Every reader checks what it reads and raises `RDMFileError` naming the file, the field and the
problem (wrong key, non-square or asymmetric RDM, non-finite values, a mask that does not match
the number of searchlights), so nothing half-read reaches a database. ``scipy.io`` and
``nibabel`` are imported when needed (nibabel is the optional ``fmri`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "RDMFileError", "SearchlightData", "load_model_rdm", "load_roi_rdms", "load_searchlight_rdms",
    "searchlight_blocks", "searchlight_volume",
]


class RDMFileError(ValueError):
    """A file that does not hold RDMs in the expected layout."""


def _fail(path, field: str, problem: str, fix: str) -> RDMFileError:
    return RDMFileError(f"{path}: field {field!r}: {problem}; {fix}")


def _read_mat(path: Path, key: str) -> np.ndarray:
    """The array under ``key`` of a MATLAB file (v5 through scipy, v7.3 through h5py)."""
    if not path.is_file():
        raise RDMFileError(f"{path}: no such file")
    try:
        from scipy.io import loadmat

        contents = loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as handle:
            contents = {name: np.asarray(handle[name]).T for name in handle if isinstance(handle[name], h5py.Dataset)}
    except Exception as error:
        raise RDMFileError(f"{path}: not a readable MATLAB .mat file ({type(error).__name__}: {error})") from None
    if key not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise _fail(path, key, f"missing (the file holds {found})", f"save the RDM under the key {key!r}")
    return np.asarray(contents[key])


def _checked_square(values: np.ndarray, path, field: str, n: int | None = None) -> np.ndarray:
    """(..., n, n) RDMs: numeric, finite, square, symmetric, of n conditions if given."""
    if not np.issubdtype(values.dtype, np.number) or values.ndim < 2:
        raise _fail(path, field, f"is {values.dtype} of shape {values.shape}", "store numeric (n, n) RDMs")
    if values.shape[-1] != values.shape[-2] or values.shape[-1] < 3:
        raise _fail(path, field, f"RDM of shape {values.shape[-2:]} is not square (n, n) with n >= 3",
                    "store full square RDMs, one row and column per condition")
    if n is not None and values.shape[-1] != n:
        raise _fail(path, field, f"has {values.shape[-1]} conditions, expected {n}",
                    "use RDMs of the same stimulus set")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise _fail(path, field, "contains NaN or infinity", "remove or re-estimate those entries")
    scale = max(float(np.abs(values).max()), 1e-300)
    if np.abs(values - np.swapaxes(values, -1, -2)).max() > 1e-6 * scale:
        raise _fail(path, field, "RDM is not symmetric", "store dissimilarities d(i, j) = d(j, i)")
    return values


def _condensed(values: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(values.shape[-1], 1)
    return values[..., rows, cols]


def load_model_rdm(path: str | Path, *, key: str = "rdm", n_conditions: int | None = None) -> np.ndarray:
    """One model (network layer) RDM from a ``.mat`` file.

    Returns:
        (n (n - 1) / 2,) condensed RDM, float64, upper triangle row by row.

    Raises:
        RDMFileError: a missing file or key, a non-square, asymmetric or non-finite RDM.
    """
    path = Path(path)
    values = _read_mat(path, key)
    if values.ndim != 2:
        raise _fail(path, key, f"has shape {values.shape}, not one (n, n) RDM", "save one RDM per file")
    return _condensed(_checked_square(values, path, key, n_conditions))


def load_roi_rdms(path: str | Path, *, key: str = "subject_rdm", n_conditions: int | None = None) -> np.ndarray:
    """Per-subject RDMs of one region of interest from a ``.mat`` file.

    Returns:
        (n_subjects, n (n - 1) / 2) condensed RDMs, float64.

    Raises:
        RDMFileError: as `load_model_rdm`, or an array that is not (n_subjects, n, n).
    """
    path = Path(path)
    values = _read_mat(path, key)
    if values.ndim != 3:
        raise _fail(path, key, f"has shape {values.shape}, not (n_subjects, n, n)", "stack one RDM per subject")
    return _condensed(_checked_square(values, path, key, n_conditions))


@dataclass(frozen=True)
class SearchlightData:
    """Searchlight RDMs and where each searchlight sits.

    Attributes:
        rdms: (n_subjects, n_searchlights, n_pairs) condensed RDMs, float32.
        mask: (X, Y, Z) bool brain mask.
        affine: (4, 4) voxel-to-world transform of the mask.
        voxels: (n_searchlights, 2, 3) int, first and one-past-last voxel of the box each
            searchlight's value paints in a map (`searchlight_volume`).
        layout: ``"blocks"`` or ``"voxels"``.
    """

    rdms: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    voxels: np.ndarray
    layout: str


def searchlight_blocks(mask: np.ndarray, *, sl_rad: int = 1, max_blk_edge: int = 2) -> np.ndarray:
    """Boxes of the seed's block layout over a mask (Brainiak's searchlight blocks).

    Blocks start every ``max_blk_edge`` voxels along each axis and extend by ``2 sl_rad``;
    a block is kept if the part of it more than ``sl_rad`` from its border holds a mask voxel.
    A result for block ``i`` paints the voxels from its start plus ``sl_rad`` onwards.

    Returns:
        (n_blocks, 2, 3) int: the painted box's first and one-past-last voxel per block.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3-D, got shape {mask.shape}")
    outer = max_blk_edge + 2 * sl_rad
    boxes = []
    for i in range(0, mask.shape[0], max_blk_edge):
        for j in range(0, mask.shape[1], max_blk_edge):
            for k in range(0, mask.shape[2], max_blk_edge):
                size = mask[i:i + outer, j:j + outer, k:k + outer].shape
                inner = mask[i + sl_rad:i + size[0] - sl_rad, j + sl_rad:j + size[1] - sl_rad,
                             k + sl_rad:k + size[2] - sl_rad]
                if inner.any():
                    start = np.array([i, j, k]) + sl_rad
                    boxes.append((start, np.minimum(start + np.array(size), mask.shape)))
    return np.array(boxes, dtype=np.int64).reshape(-1, 2, 3)


def _voxel_boxes(mask: np.ndarray) -> np.ndarray:
    points = np.argwhere(mask)
    return np.stack([points, points + 1], axis=1)


def searchlight_volume(values: np.ndarray, voxels: np.ndarray, shape: tuple[int, int, int],
                       fill: float = np.nan) -> np.ndarray:
    """Paint one value per searchlight into a 3-D map (later searchlights overwrite earlier).

    Args:
        values: (n_searchlights,) numbers.
        voxels: (n_searchlights, 2, 3) boxes from `SearchlightData.voxels`.
        shape: the mask's shape.
        fill: value outside every searchlight.

    Returns:
        (X, Y, Z) float64 map.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(voxels),):
        raise ValueError(f"need one value per searchlight ({len(voxels)}), got shape {values.shape}")
    volume = np.full(shape, fill, dtype=np.float64)
    for value, (start, stop) in zip(values, voxels):
        volume[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]] = value
    return volume


def load_searchlight_rdms(
    rdm_path: str | Path,
    mask_path: str | Path,
    *,
    layout: str = "blocks",
    sl_rad: int = 1,
    max_blk_edge: int = 2,
) -> SearchlightData:
    """Searchlight RDMs (``all_sub_slrdms.npy``) and their brain mask (NIfTI, read by nibabel).

    Args:
        rdm_path: ``.npy`` of shape (n_subjects, n_searchlights, n, n).
        mask_path: ``.nii``/``.nii.gz`` brain mask (non-zero = brain).
        layout: ``"blocks"`` (the seed's, with ``sl_rad`` and ``max_blk_edge``) or
            ``"voxels"`` (one searchlight per mask voxel, C order).

    Raises:
        RDMFileError: an unreadable file, RDMs not (n_subjects, n_searchlights, n, n),
            non-square, asymmetric or non-finite RDMs, a mask that is not 3-D, or a number
            of searchlights the mask does not give.
    """
    rdm_path, mask_path = Path(rdm_path), Path(mask_path)
    if layout not in ("blocks", "voxels"):
        raise ValueError(f"layout {layout!r}: use 'blocks' or 'voxels'")
    try:
        values = np.load(rdm_path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise RDMFileError(f"{rdm_path}: not a readable .npy array ({type(error).__name__}: {error})") from None
    if values.ndim != 4:
        raise _fail(rdm_path, "array", f"has shape {values.shape}, not (n_subjects, n_searchlights, n, n)",
                    "stack one (n, n) RDM per searchlight and subject")
    checked = _checked_square(np.asarray(values), rdm_path, "array")
    mask, affine = _read_mask(mask_path)
    voxels = searchlight_blocks(mask, sl_rad=sl_rad, max_blk_edge=max_blk_edge) if layout == "blocks" else _voxel_boxes(mask)
    if len(voxels) != checked.shape[1]:
        raise _fail(mask_path, "mask", f"gives {len(voxels)} searchlights ({layout} layout) but {rdm_path.name} "
                    f"has {checked.shape[1]}", "use the mask (and sl_rad, max_blk_edge) the searchlights were made with")
    return SearchlightData(rdms=_condensed(checked).astype(np.float32), mask=mask, affine=affine,
                           voxels=voxels, layout=layout)


def _read_mask(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        import nibabel
    except ImportError:
        raise ImportError("reading NIfTI masks needs nibabel: pip install 'neurofit[fmri]'") from None
    if not path.is_file():
        raise RDMFileError(f"{path}: no such file")
    try:
        image = nibabel.load(str(path))
        data = np.asarray(image.dataobj)
    except Exception as error:
        raise RDMFileError(f"{path}: not a readable NIfTI image ({type(error).__name__}: {error})") from None
    data = np.squeeze(data) if data.ndim > 3 else data
    if data.ndim != 3:
        raise _fail(path, "mask", f"has shape {data.shape}, not a 3-D volume", "give a 3-D brain mask")
    return data != 0, np.asarray(image.affine, dtype=np.float64)
