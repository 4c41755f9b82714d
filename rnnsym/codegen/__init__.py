"""Code generation: cell → NumPy module (``render``), ``generated/`` (``write_all``/``check``), and
in-memory modules for cells defined at run time (``compile``)."""
