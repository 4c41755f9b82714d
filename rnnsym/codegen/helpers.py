"""NumPy helper functions a generated module may need, emitted only where used.

Each is plain NumPy source, copied into the module so that generated files import numpy only.
"""

HELPERS = {
    "_sigmoid": '''
def _sigmoid(u):
    """Logistic function without overflow for any finite u: exp is only taken of -|u|."""
    e = np.exp(-np.abs(u))
    return np.where(u >= 0, 1, e) / (1 + e)
''',
}
