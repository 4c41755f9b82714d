"""Keras layers for ``--gradients`` on every autodiff backend (torch, tensorflow, jax), as
harnesses: ``KERAS_BACKEND`` is fixed per process, so ``python keras_gradients.py`` runs one
case per harness on the backend it names and prints one line each, ``NAME KIND | DIAGNOSIS``.

Keras runs its GRU through a fused backend kernel where it can (``backend.gru``: torch and
jax on the CPU here) and through the generic loop that calls ``cell.call`` otherwise
(``use_cudnn=False``); both must pass. A cell that reads its previous state through
``keras.ops.stop_gradient`` must fail, diagnosed as a detached state."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rnnsym.conformance.cases import build_case  # noqa: E402
from rnnsym.conformance.gradient_bugs import diagnose_gradients  # noqa: E402
from rnnsym.conformance.gradients import run_gradient_case  # noqa: E402
from rnnsym.frameworks import Config  # noqa: E402
from rnnsym.frameworks.keras import KerasHarness, _keras  # noqa: E402


class GenericLoop(KerasHarness):
    """Correct: the layer's generic RNN loop (no fused kernel)."""

    def build(self, config):
        layer = super().build(config)
        for sub in self._directions(layer, config):
            sub.use_cudnn = False
        return layer


class StateDetached(GenericLoop):
    """The cell reads its previous state through keras.ops.stop_gradient."""
    EXPECT = "state detached before every step"

    def build(self, config):
        layer = super().build(config)
        ops = _keras().ops
        for sub in self._directions(layer, config):
            def detached(inputs, states, training=False, call=sub.cell.call):
                return call(inputs, [ops.stop_gradient(s) for s in states], training=training)
            sub.cell.call = detached
        return layer


def main():
    config = Config(cell="gru", T=4, B=2, d_in=3, d_h=5, dtype="float32",
                    initial_state=True, bidirectional=True)
    for cls in (KerasHarness, GenericLoop, StateDetached):
        harness = cls("gru")
        outcome = run_gradient_case(harness, build_case(harness, config))
        found = diagnose_gradients(harness, outcome) if outcome.kind else []
        print(f"{cls.__name__} {outcome.kind} | {' / '.join(found)}")


if __name__ == "__main__":
    main()
