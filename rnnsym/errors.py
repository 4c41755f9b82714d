"""rnnsym's exceptions: one base class, and the two errors every layer shares.

The bottom layer: imports nothing of rnnsym, so any module may raise these. Every public
exception of rnnsym derives from :class:`RnnsymError` (``except rnnsym.RnnsymError`` catches
them all); each also derives from the built-in it stands for (``ValueError``,
``NotImplementedError``, ...), so ``except ValueError`` keeps working. The other errors live
beside the code that raises them (``rnnsym.cells.parse.DefinitionError``,
``rnnsym.shapes.ShapeError``, ``rnnsym.onnx.attributes.OnnxError``, ...); the glossary in
docs/architecture.md lists them.

The one deliberate exception: ``rnnsym.conformance.limits.TargetTimeout`` is a ``BaseException`` so
that a target's own ``except Exception`` cannot swallow the checker's time limit.
"""


class RnnsymError(Exception):
    """The base class of every exception rnnsym raises on purpose."""


class UsageError(RnnsymError, ValueError):
    """The input or the options cannot be used at all: a command-line mistake, a target that
    cannot be checked, an unknown cell (CLI exit status 2, one line, no traceback).
    ``rnnsym.cli.UsageError``, ``rnnsym.frameworks.UsageError`` and ``rnnsym.conformance.UsageError``
    are this class."""


class Unsupported(RnnsymError, NotImplementedError):
    """A target (or a harness, for a framework's own "not supported" errors) declines an
    optional feature, a dtype or a whole ONNX model: the checker records it as unsupported and
    checks the rest; it is not a failure by itself. Raising plain ``NotImplementedError`` means
    the same. ``rnnsym.conformance.Unsupported``, ``rnnsym.frameworks.Unsupported`` and
    ``rnnsym.frameworks.onnx.Unsupported`` are this class."""


__all__ = ["RnnsymError", "Unsupported", "UsageError"]
