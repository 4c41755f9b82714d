"""``rnnsym.conformance``: the conformance checker behind ``rnnsym.check`` (formerly
the package ``rnnsym.check``): property-test an RNN/LSTM/GRU implementation against rnnsym.

    report = rnnsym.check("torch", cell="gru")                 # torch.nn.GRU
    report = rnnsym.check("keras", cell="gru", variant="reset_after=false")
    report = rnnsym.check("mypkg.rnn:MyGRU", cell="gru")       # drop-in for torch.nn.GRU
    report = rnnsym.check("path/to/impl.py:gru", cell="gru")   # canonical NumPy function
    report = rnnsym.check("my.py:MyLSTM", cell="lstm", without="lengths", strict=False)
    print(report); assert report.passed; report.exit_code      # 0 OK, 1 MISMATCH, 3 nothing run

A target lacking an optional feature raises ``NotImplementedError`` (or
:class:`Unsupported`): the feature is listed as unsupported, not failed.

The package owns the checker; it may import ``rnnsym.frameworks`` (harnesses, converters)
and everything below it, never ``rnnsym.testing`` or the CLI. One file per role:

=====================  ======================================================================
``checker.py``         ``check()``: options, target, survey, search, diagnosis, report
``space.py``           the explored space, the optional features, ``--features/--without``
``cases.py``           one example (``Case``) and the Hypothesis strategy drawing them
``strategies.py``      Hypothesis strategies for sizes, parameters, inputs, states
``target.py``          calling the target on a case: outcome, failure kinds, time limit
``survey.py``          which features the target lacks ("unsupported" is not "wrong")
``search.py``          the one run loop (``run_checks``), the Hypothesis search, ``SearchStats``
``oracle.py``          expected outputs (generated code from the symbolic cells, float64)
``tolerance.py``       per-element tolerances from a backward-error estimate
``compare.py``         comparing flat outputs with tolerances (``Mismatch``)
``bug_models.py``      wrong-but-plausible models of the target (``BugModel``), run like it
``diagnose.py``        the table of known bug classes, and naming the one a failure matches
``report.py``          ``Report`` / ``Counterexample``: verdicts, exit codes, formatting
``cli.py``             ``rnnsym check ...``
``sequence*.py``       sequence targets (chunked / recurrent / decode paths of a linear
                       recurrence): ``sequence.py`` the search, ``sequence_strategies.py``
                       the cases, ``sequence_properties.py`` the properties and diagnoses,
                       ``sequence_tolerance.py``, ``sequence_report.py``,
                       ``sequence_oracle.py`` (docs/sequence-targets.md)
=====================  ======================================================================
"""
from __future__ import annotations

from rnnsym.conformance.cases import Case, cases
from rnnsym.conformance.checker import check
from rnnsym.conformance.report import Counterexample, Report, UnsupportedFeature
from rnnsym.conformance.sequence import check_sequence
from rnnsym.conformance.space import FEATURES, config_space
from rnnsym.conformance.target import KINDS, Outcome, run_case
from rnnsym.check_options import CheckOptions
from rnnsym.frameworks import ContractError, Unsupported, UsageError

__all__ = ["check", "Report", "Counterexample", "CheckOptions", "UsageError", "ContractError",
           "Unsupported", "UnsupportedFeature", "FEATURES", "KINDS", "cases", "run_case", "Case",
           "Outcome", "config_space", "check_sequence"]

