"""The settings of a run of the byte-level LSTM (no PyTorch needed to read or validate them)."""

from __future__ import annotations

from dataclasses import dataclass

from examples._checks import check_grad_clip, check_positive_ints, check_seed, check_weight_decay

__all__ = ["ADAMW", "VOCABULARY", "LSTMConfig"]

ADAMW = {"betas": (0.9, 0.999), "eps": 1e-8}
"""``torch.optim.AdamW``'s own defaults, as a practitioner gets them."""

VOCABULARY = 256


@dataclass(frozen=True)
class LSTMConfig:
    """Model size, data and optimiser settings of one run (validated at construction).

    Attributes:
        embed, hidden, n_layers: byte embedding width, LSTM width and depth.
        context: bytes per training window (the LSTM starts each window from a zero state).
        batch_size: windows per update.
        steps: number of updates ``T``.
        weight_decay: AdamW's decoupled weight decay, on every parameter (PyTorch's default 0.01).
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
        check_grad_clip(self.grad_clip)
