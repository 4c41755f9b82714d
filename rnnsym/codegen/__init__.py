"""Code generation: cell → NumPy module (``render``), ``generated/`` (``write_all``/``check``), and
in-memory modules for cells defined at run time (``compile``).

Owns the planner (``plan``: fused GEMMs, CSE), the generator and its template, and the sync of
``generated/``. May import :mod:`rnnsym.cells`, :mod:`rnnsym.printing`, :mod:`rnnsym.shapes` and
:mod:`rnnsym.gradients` (the backward walk); nothing above them (it is imported by
``rnnsym.onnx`` and the checker's oracle)."""
