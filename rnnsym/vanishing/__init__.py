"""The vanishing/exploding picture: ``‖∂h_t/∂h_0‖₂`` for t = 1..N along a trajectory.

The state trajectory is the generated code's (``rnnsym.compile(cell)``, one ``step`` per t).
Every step's Jacobian ``J_t = ∂s_t/∂s_{t-1}`` of the whole state vector ``s = (c, h, …)`` comes
from the generated backward (:func:`step_jacobians`: one batched call, a row per step, sample
and state unit, upstream gradient ``e_k`` on the new state, so ``d_state0`` is row k of
``J_t``), and ``∂s_t/∂s_0 = J_t ∂s_{t-1}/∂s_0`` is multiplied up; exact up to rounding. So the
derivative rules are the backward's (:mod:`rnnsym.gradients`, compiled by :mod:`rnnsym.codegen`),
the same that :mod:`rnnsym.jacobian` transposes: one source of truth, and every cell with a
generated backward (layer norm, division, chunks, every activation) has its curve. The product
is renormalized each step and its scale kept as a base-10 logarithm, so that ``1e-400`` and
``1e+400`` are reported, not 0 and inf.

Random weights: PyTorch's default initialization (every entry ``U(-1/√d_h, 1/√d_h)``), then
each recurrent matrix (a parameter multiplying a previous state, ``W_hh``, LSTM ``W_h{i,f,g,o}``,
GRU ``W_h{r,z,n}``) rescaled to spectral radius r (its largest singular value if not square).

Layout: ``chain`` (the step Jacobians and their product), ``weights`` (random,
scaled or loaded weights), ``curves`` (curves, table, plot).
"""
from rnnsym.vanishing.chain import (GradientsError, analysed_state, log_norms,  # noqa: F401
                                    state_jacobians, step_jacobians)
from rnnsym.vanishing.curves import Curve, _fmt, curves, plot, table  # noqa: F401
from rnnsym.vanishing.weights import (default_sizes, load_params, random_params,  # noqa: F401
                                      recurrent_params, scale_recurrent, spectral_radius)
