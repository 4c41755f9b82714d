"""Hypothesis strategies for RNN cells (distinct sizes, parameters, inputs, states): the
checker's own, :mod:`rnnsym.conformance.strategies`, re-exported for users' test suites."""
from rnnsym.conformance.strategies import (INPUT_MAGNITUDES, WEIGHT_MAGNITUDES,  # noqa: F401
                                     canonical_param_shapes, distinct_sizes, float_arrays,
                                     inputs, params_for, stacked_states, state_shapes, states,
                                     target_values)
