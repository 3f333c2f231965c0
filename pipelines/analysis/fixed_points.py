"""Fixed points of a recurrent model's one-step map, found from many initial states at once.

For a discrete-time map ``F(h, u)`` (a model's ``step``), a fixed point under constant input u
is h* with F(h*, u) = h*. As CtD (``ctd/comparison/fixedpoints.py``, after Golub & Sussillo's
FixedPointFinder) we minimise the speed ``q(h) = ½‖F(h, u) - h‖²`` with Adam from many initial
states, which are usually states the model visits. All initial states are optimised in ONE
batched problem (the loss is Σ_k q(h_k); each state's gradient depends only on its own term), so
K states cost about one forward pass of batch K per iteration rather than K separate problems.
Then the Jacobian dF/dh at each point (batched with ``torch.func``) gives its eigenvalues: a
point is stable when every eigenvalue lies inside the unit circle (|λ| < 1).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["classify", "find_fixed_points", "find_fixed_points_one_by_one", "jacobian_eigenvalues", "unique_points"]

StepFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _optimise(step: StepFn, states: torch.Tensor, u: torch.Tensor, lr: float, n_iters: int,
              tolerance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on the states (betas 0.9, 0.999), written out: torch.optim's first step imports
    torch._dynamo, which took about 10 s on a loaded 2-core machine, longer than the search."""
    h = states.clone()
    m, v = torch.zeros_like(h), torch.zeros_like(h)
    for i in range(1, n_iters + 1):
        h.requires_grad_(True)
        q = 0.5 * (step(h, u) - h).pow(2).sum(-1)
        if float(q.detach().max()) < tolerance:
            break
        # Gradients with respect to the states only: the model's weights stay untouched.
        (grad,) = torch.autograd.grad(q.sum(), h)
        with torch.no_grad():
            m.mul_(0.9).add_(grad, alpha=0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            h = h - lr * (m / (1 - 0.9**i)) / ((v / (1 - 0.999**i)).sqrt() + 1e-8)
    h = h.detach()
    with torch.no_grad():
        q = 0.5 * (step(h, u) - h).pow(2).sum(-1)
    return h, q


def find_fixed_points(step: StepFn, initial_states: np.ndarray, inputs: np.ndarray | None = None, *,
                      lr: float = 1e-2, n_iters: int = 2000, tolerance: float = 1e-10,
                      q_threshold: float = 1e-5) -> dict[str, np.ndarray]:
    """Candidate fixed points from every initial state, optimised together.

    Args:
        step: F(h, u), batched: (K, L), (K, I) -> (K, L) torch tensors (gradients must flow).
        initial_states: (K, L) starting states.
        inputs: (I,) the constant input (default: zeros of width 0 is not allowed; pass zeros).
        lr, n_iters: Adam's learning rate and iterations (CtD: 1e-2, 10,000).
        tolerance: stop early once every q is below this.
        q_threshold: points with q below it count as converged.

    Returns:
        ``points`` (K, L), ``q`` (K,) final speeds, ``converged`` (K,) bool; float64 / bool.
    """
    states = torch.as_tensor(np.asarray(initial_states), dtype=torch.float32)
    if states.ndim != 2:
        raise ValueError(f"initial_states must be (n_states, n_latents), got {tuple(states.shape)}")
    u = torch.as_tensor(np.zeros(0) if inputs is None else np.asarray(inputs), dtype=torch.float32)
    u = u.expand(len(states), -1)
    points, q = _optimise(step, states, u, lr, n_iters, tolerance)
    q = q.double().numpy()
    return {"points": points.double().numpy(), "q": q, "converged": q < q_threshold}


def find_fixed_points_one_by_one(step: StepFn, initial_states: np.ndarray, inputs: np.ndarray | None = None,
                                 **kwargs) -> dict[str, np.ndarray]:
    """The same optimisation run separately for each initial state (the benchmark's baseline)."""
    parts = [find_fixed_points(step, s[None], inputs, **kwargs) for s in np.asarray(initial_states)]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("points", "q", "converged")}


def unique_points(points: np.ndarray, radius: float = 1e-2) -> np.ndarray:
    """Indices of points kept after dropping any within ``radius`` of an earlier kept one."""
    points = np.asarray(points, dtype=np.float64)
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    keep: list[int] = []
    duplicate = np.zeros(len(points), bool)
    for i in range(len(points)):  # a greedy pass over a precomputed distance matrix
        if not duplicate[i]:
            keep.append(i)
            duplicate |= distances[i] < radius
    return np.asarray(keep, dtype=np.int64)


def jacobian_eigenvalues(step: StepFn, points: np.ndarray, inputs: np.ndarray | None = None) -> np.ndarray:
    """Eigenvalues of dF/dh at each point: (K, L) complex128, all points in one batched call."""
    h = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    u = torch.as_tensor(np.zeros(0) if inputs is None else np.asarray(inputs), dtype=torch.float32)

    def single(x: torch.Tensor) -> torch.Tensor:
        return step(x[None], u[None])[0]

    jac = torch.func.vmap(torch.func.jacrev(single))(h)
    return np.linalg.eigvals(jac.detach().double().numpy())


def classify(eigenvalues: np.ndarray) -> np.ndarray:
    """Stable (True) where every eigenvalue of a discrete map lies inside the unit circle: (K,) bool."""
    return np.abs(eigenvalues).max(axis=-1) < 1.0
