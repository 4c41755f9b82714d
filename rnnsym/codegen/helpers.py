"""NumPy helper functions a generated module may need, emitted only where used.

Each is plain NumPy source, copied into the module so that generated files import numpy only.
"""

HELPERS = {
    "_sigmoid": '''
def _sigmoid(u):
    """Logistic function e^min(u,0) / (1 + e^-|u|): exp never overflows (1/(1+exp(-u)) does past
    |u| ~ 88 in float32), and small values keep full relative accuracy."""
    return np.exp(np.minimum(u, 0)) / (1 + np.exp(-np.abs(u)))
''',
    "_sigmoid_": '''
def _sigmoid_(u):
    """_sigmoid, in place on the array u (a view of a reused buffer)."""
    e = np.abs(u)
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1
    np.minimum(u, 0, out=u)
    np.exp(u, out=u)
    u /= e
''',
}
