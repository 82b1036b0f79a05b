"""A byte-level LSTM trained in PyTorch with any schedule: the second training loop (see ``examples/README.md``).

:class:`LSTMConfig` imports without PyTorch; :func:`train`, :class:`CharLSTM` and :class:`LSTMResult`
import it when first used.
"""

from examples.charlstm.config import ADAMW, OPTIMIZERS, RMSPROP, SGD, LSTMConfig

__all__ = ["ADAMW", "OPTIMIZERS", "RMSPROP", "SGD", "CharLSTM", "LSTMConfig", "LSTMResult", "train"]


def __getattr__(name: str):
    if name in ("CharLSTM", "LSTMResult", "train"):
        import importlib

        return getattr(importlib.import_module("examples.charlstm.training"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
