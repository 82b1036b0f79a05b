"""The settings of a run of the byte-level LSTM (no PyTorch needed to read or validate them)."""

from __future__ import annotations

from dataclasses import dataclass

from examples._checks import check_grad_clip, check_positive_ints, check_seed, check_weight_decay

__all__ = ["ADAMW", "OPTIMIZERS", "RMSPROP", "SGD", "VOCABULARY", "LSTMConfig"]

ADAMW = {"betas": (0.9, 0.999), "eps": 1e-8}
"""``torch.optim.AdamW``'s own defaults, as a practitioner gets them."""

RMSPROP = {"alpha": 0.95, "eps": 1e-8}
"""``torch.optim.RMSprop`` as char-rnn (Karpathy, 2015) trains its LSTMs: decay rate 0.95, no momentum."""

SGD = {"momentum": 0.9, "nesterov": True}
"""``torch.optim.SGD`` with Nesterov momentum 0.9, the common PyTorch setting for SGD with momentum."""

OPTIMIZERS = ("adamw", "rmsprop", "sgd")

VOCABULARY = 256


@dataclass(frozen=True)
class LSTMConfig:
    """Model size, data and optimiser settings of one run (validated at construction).

    Attributes:
        embed, hidden, n_layers: byte embedding width, LSTM width and depth.
        context: bytes per training window (the LSTM starts each window from a zero state).
        batch_size: windows per update.
        steps: number of updates ``T``.
        optimizer: ``adamw`` (:data:`ADAMW`), ``rmsprop`` (:data:`RMSPROP`) or ``sgd`` (:data:`SGD`).
        weight_decay: AdamW's decoupled weight decay, on every parameter (PyTorch's default 0.01); must be
            0 with ``rmsprop`` and ``sgd``, whose PyTorch decay is an L2 term in the gradient, another thing.
        grad_clip: maximum global gradient norm (``clip_grad_norm_``), or ``None``.
        eval_every: updates between validation losses; eval_batches: validation batches.
        seed: seeds the initial weights and the training batches.
    """

    embed: int = 48
    hidden: int = 192
    n_layers: int = 1
    context: int = 64
    batch_size: int = 16
    steps: int = 1000
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batches: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive_ints(
            self,
            ("embed", "hidden", "n_layers", "context", "batch_size", "steps", "eval_every", "eval_batches"),
        )
        check_seed(self.seed)
        check_weight_decay(self.weight_decay)
        if not isinstance(self.optimizer, str) or self.optimizer not in OPTIMIZERS:
            raise ValueError(f"`optimizer` must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer != "adamw" and self.weight_decay != 0:
            raise ValueError(
                f"`weight_decay` must be 0 with optimizer {self.optimizer!r} (it applies to adamw), "
                f"got {self.weight_decay!r}"
            )
        check_grad_clip(self.grad_clip)
