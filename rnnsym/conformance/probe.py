"""Deprecated module name: the feature survey is :mod:`rnnsym.conformance.survey` (its class
:class:`~rnnsym.conformance.survey.FeatureSurvey`, formerly ``Probe``). "probe" also named the
contract check (``Harness.probe``, now ``check_contract``) and the ONNX attribute survey
(docs/architecture.md, glossary). Kept so that ``from rnnsym.conformance.probe import Probe`` works."""
from __future__ import annotations

import warnings

from rnnsym.conformance.survey import FLOAT_DTYPES, PROBE_SIZES, FeatureSurvey, Lacking  # noqa: F401

__all__ = ["Probe", "FeatureSurvey", "Lacking", "FLOAT_DTYPES", "PROBE_SIZES"]


class Probe(FeatureSurvey):
    """Deprecated: :class:`rnnsym.conformance.survey.FeatureSurvey`."""

    def __init__(self, *args, **kwargs):
        warnings.warn("rnnsym.conformance.probe.Probe is deprecated: use "
                      "rnnsym.conformance.survey.FeatureSurvey", DeprecationWarning, stacklevel=2)
        super().__init__(*args, **kwargs)
