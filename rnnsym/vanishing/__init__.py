"""The vanishing/exploding picture: ``‖∂h_t/∂h_0‖₂`` for t = 1..N along a trajectory.

The state trajectory is the generated code's (``rnnsym.compile(cell)``, one ``step`` per t).
The Jacobian ``∂s_t/∂s_0`` of the whole state vector ``s = (c, h, …)`` is carried along it in
forward mode: every quantity of the step is evaluated with its tangent, ``∂q_t/∂s_0``, by the
chain rule over rnnsym's nodes (the rules of :mod:`rnnsym.jacobian`, applied to numbers):

* ``A u`` (A a parameter) → ``A ∂u``;  a sum → the sum of the tangents;
* ``a ⊙ b`` → ``diag(b) ∂a + diag(a) ∂b``;  ``f(u)`` → ``diag(f'(u)) ∂u``;
* the previous state ``s'_{t-1}`` → its block of ``∂s_{t-1}/∂s_0`` (the identity at t = 1).

So ``∂s_t/∂s_0 = J_t ∂s_{t-1}/∂s_0`` without forming ``J_t``; exact up to rounding.
:func:`step_jacobians` gets every ``J_t`` from one batched call of the generated backward
instead (identity upstream rows); the tests check that both agree. The forward-mode chain stays
the route used: it was faster side by side (LSTM, d_h = 32, 100 steps: 0.31 s vs 0.47 s,
median of 3) and needs no backward rule, so it covers every cell the forward does. ``f`` and
``f'`` of every activation come from its scalar SymPy form in ``ACTIVATIONS`` (differentiated
by SymPy), so a user-defined cell with any activation works. The product is renormalized each
step and its scale kept as a base-10 logarithm, so that ``1e-400`` and ``1e+400`` are reported,
not 0 and inf.

Random weights: PyTorch's default initialization (every entry ``U(-1/√d_h, 1/√d_h)``), then
each recurrent matrix (a parameter multiplying a previous state, ``W_hh``, LSTM ``W_h{i,f,g,o}``,
GRU ``W_h{r,z,n}``) rescaled to spectral radius r (its largest singular value if not square).

Layout: ``chain`` (the forward-mode chain and the backward cross-check), ``weights`` (random,
scaled or loaded weights), ``curves`` (curves, table, plot).
"""
from rnnsym.vanishing.chain import (GradientsError, _Evaluator, analysed_state,  # noqa: F401
                                    log_norms, state_jacobians, step_jacobians)
from rnnsym.vanishing.curves import Curve, _fmt, curves, plot, table  # noqa: F401
from rnnsym.vanishing.weights import (default_sizes, load_params, random_params,  # noqa: F401
                                      recurrent_params, scale_recurrent, spectral_radius)
