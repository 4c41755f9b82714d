"""Function targets written the way a user wraps a float32-only fused kernel (TensorFlow's
``GRUBlockCell`` is one): exact in float32, ``NotImplementedError`` for float64 (issue 19).

``forward`` is a reset-before GRU in rnnsym's canonical convention; ``backward`` is its own
backward, and both assert the dtype of every array they are handed (JAX's vjp rejects
upstream gradients in another dtype)."""
import numpy as np


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(0.5 * a))


def _kernel_dtype(*arrays):
    for a in arrays:
        if np.asarray(a).dtype != np.float32:
            raise NotImplementedError(f"GRUBlockCell: only float32 is implemented, got "
                                      f"{np.asarray(a).dtype}")


def forward(params, x, state0=None, return_cache=False):
    p = params
    _kernel_dtype(x, *p.values(), *(state0 or {}).values())
    h = np.zeros((x.shape[1], p["W_hr"].shape[0]), x.dtype) if state0 is None else state0["h"]
    outputs, cache = [], []
    for x_t in x:
        r = _sigmoid(x_t @ p["W_xr"].T + p["b_xr"] + h @ p["W_hr"].T + p["b_hr"])
        z = _sigmoid(x_t @ p["W_xz"].T + p["b_xz"] + h @ p["W_hz"].T + p["b_hz"])
        n = np.tanh(x_t @ p["W_xn"].T + p["b_xn"] + (r * h) @ p["W_hn"].T + p["b_hn"])
        cache.append((x_t, h, r, z, n))
        h = n + z * (h - n)
        outputs.append(h)
    if return_cache:
        return np.stack(outputs), {"h": h}, cache
    return np.stack(outputs), {"h": h}


def _assert_float32(*arrays):
    for a in arrays:
        assert np.asarray(a).dtype == np.float32, f"backward: got {np.asarray(a).dtype}"


def backward(params, cache, d_outputs, d_final_state):
    """BPTT of ``forward``; asserts that every array it is handed is float32."""
    p = params
    _assert_float32(d_outputs, *d_final_state.values(), *p.values(),
                    *(a for step in cache for a in step))
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros((len(cache),) + cache[0][0].shape, np.float32) if cache else None
    dh_next = d_final_state["h"]
    for t in reversed(range(len(cache))):
        x_t, h, r, z, n = cache[t]
        dh = d_outputs[t] + dh_next
        dan = dh * (1 - z) * (1 - n * n)
        daz = dh * (h - n) * z * (1 - z)
        d_rh = dan @ p["W_hn"]
        dar = d_rh * h * r * (1 - r)
        for g, da, h_in in (("n", dan, r * h), ("z", daz, h), ("r", dar, h)):
            grads[f"W_x{g}"] += da.T @ x_t
            grads[f"W_h{g}"] += da.T @ h_in
            grads[f"b_x{g}"] += da.sum(0)
            grads[f"b_h{g}"] += da.sum(0)
        dx[t] = dan @ p["W_xn"] + daz @ p["W_xz"] + dar @ p["W_xr"]
        dh_next = dh * z + d_rh * r + daz @ p["W_hz"] + dar @ p["W_hr"]
    return grads, dx, {"h": dh_next}
