"""A tiny GPT trained on the Python standard library with optax schedules (see ``examples/README.md``)."""

from examples.tinygpt.data import Corpus, batches, corpus_files, load_corpus, validation_batches
from examples.tinygpt.model import GPT, loss_fn, n_params
from examples.tinygpt.schedules import KINDS, make_schedule, schedule_from_file, schedule_values
from examples.tinygpt.train import (
    CSV_HEADER,
    OPTIMIZERS,
    TrainConfig,
    TrainResult,
    make_optimizer,
    sidecar_path,
    train,
)

__all__ = [
    "CSV_HEADER",
    "GPT",
    "KINDS",
    "OPTIMIZERS",
    "Corpus",
    "TrainConfig",
    "TrainResult",
    "batches",
    "corpus_files",
    "load_corpus",
    "loss_fn",
    "make_optimizer",
    "make_schedule",
    "n_params",
    "schedule_from_file",
    "schedule_values",
    "sidecar_path",
    "train",
    "validation_batches",
]
