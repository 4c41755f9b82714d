"""Deprecated module name: the bug models are :mod:`rnnsym.conformance.bug_models` (``Variant`` is
now ``BugModel``, ``variant_outputs`` is ``bug_model_outputs``; "variant" means math options
only: docs/architecture.md, glossary). Kept so that imports of the old names work."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

from rnnsym.conformance.bug_models import *  # noqa: F401,F403 - the old module's names
from rnnsym.conformance.bug_models import BugModel, bug_model_outputs

#: Deprecated name of :func:`rnnsym.conformance.bug_models.bug_model_outputs`.
variant_outputs = bug_model_outputs


@dataclass
class Variant(BugModel):
    """Deprecated: :class:`rnnsym.conformance.bug_models.BugModel`."""

    def __post_init__(self):
        warnings.warn("rnnsym.conformance.variants.Variant is deprecated: use "
                      "rnnsym.conformance.bug_models.BugModel", DeprecationWarning, stacklevel=3)
