"""The tiny-GPT example: corpus split, batches, schedules, schedule files, and a short training run."""

from __future__ import annotations

import csv
import importlib
import json
import math
import zlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import examples.tinygpt as tg
from examples.tinygpt import data as tg_data
from examples.tinygpt.__main__ import main as cli_main
from schedopt.schedule import Schedule, save_schedule

EXACT = 1e-15  # closed-form schedule values: float64 round-off only
LOSS_RTOL = 1e-5  # a float32 loss recomputed outside the training loop

TRAIN_BYTES, VAL_BYTES = 300_000, 60_000
TINY = {
    "d_model": 16,
    "n_layers": 1,
    "n_heads": 2,
    "context": 16,
    "batch_size": 4,
    "steps": 20,
    "eval_every": 6,
    "eval_batches": 2,
    "seed": 3,
}


@pytest.fixture(scope="module")
def corpus() -> tg.Corpus:
    return tg.load_corpus(TRAIN_BYTES, VAL_BYTES)


# --- public API


def test_public_api_is_pinned():
    assert sorted(tg.__all__) == sorted(
        [
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
    )
    assert all(hasattr(tg, name) for name in tg.__all__)


# --- corpus


def test_corpus_files_sorted_and_filtered():
    files = tg.corpus_files()
    assert files == sorted(files)
    assert len(files) > 100
    assert all(f.endswith(".py") for f in files)
    for f in files:
        assert not set(f.split("/")[:-1]) & tg_data.EXCLUDED_DIRS, f


def test_corpus_split_deterministic_disjoint_and_non_empty(corpus):
    files = tg.corpus_files()
    val = [f for f in files if zlib.crc32(f.encode()) % 10 == 0]
    train = [f for f in files if zlib.crc32(f.encode()) % 10 != 0]
    assert val and train and not set(val) & set(train)
    assert len(val) + len(train) == len(files)
    # each split is its files' bytes, in path order, cut at the cap
    from pathlib import Path

    root = Path(corpus.root)
    for names, tokens, cap, count in (
        (train, corpus.train, TRAIN_BYTES, corpus.train_files),
        (val, corpus.val, VAL_BYTES, corpus.val_files),
    ):
        blob = b"".join((root / f).read_bytes() for f in names[:count])
        assert tokens.dtype == np.uint8 and tokens.size == cap
        assert bytes(tokens) == blob[:cap]
        assert len(blob) - len((root / names[count - 1]).read_bytes()) < cap  # the last file was needed
    again = tg.load_corpus(TRAIN_BYTES, VAL_BYTES)
    assert (again.train_sha256, again.val_sha256) == (corpus.train_sha256, corpus.val_sha256)
    assert corpus.train_sha256 != corpus.val_sha256
    assert corpus.describe()["train_files"] == corpus.train_files


def test_load_corpus_rejects_bad_caps():
    with pytest.raises(ValueError, match=r"`max_train_bytes`.*0"):
        tg.load_corpus(0, 10)
    with pytest.raises(ValueError, match=r"`max_val_bytes`.*-5"):
        tg.load_corpus(10, -5)


# --- batches


def _take(stream, n):
    return [next(stream) for _ in range(n)]


def test_batches_deterministic_for_a_seed(corpus):
    first = _take(tg.batches(corpus.train, 5, 12, seed=7), 3)
    second = _take(tg.batches(corpus.train, 5, 12, seed=7), 3)
    other = _take(tg.batches(corpus.train, 5, 12, seed=8), 3)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert_array_equal(x1, x2)
        assert_array_equal(y1, y2)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other, strict=True))
    tokens = corpus.train.astype(np.int32)
    for x, y in first:
        assert x.shape == y.shape == (5, 12) and x.dtype == y.dtype == np.int32
        assert_array_equal(x[:, 1:], y[:, :-1])  # next-byte targets
        for row_x, row_y in zip(x, y, strict=True):  # each window is a slice of the corpus
            starts = np.flatnonzero(tokens[: tokens.size - 12] == row_x[0])
            assert any(
                np.array_equal(tokens[s : s + 12], row_x) and np.array_equal(tokens[s + 1 : s + 13], row_y)
                for s in starts
            )


def test_validation_batches_fixed_and_evenly_spaced(corpus):
    n_batches, batch, context = 3, 4, 10
    first = tg.validation_batches(corpus.val, n_batches, batch, context)
    again = tg.validation_batches(corpus.val, n_batches, batch, context)
    assert len(first) == n_batches
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        assert_array_equal(x1, x2)
        assert_array_equal(y1, y2)
    starts = np.floor(np.linspace(0, corpus.val.size - context - 1, n_batches * batch)).astype(int)
    x = np.concatenate([b[0] for b in first])
    y = np.concatenate([b[1] for b in first])
    for i, s in enumerate(starts):
        assert_array_equal(x[i], corpus.val[s : s + context])
        assert_array_equal(y[i], corpus.val[s + 1 : s + context + 1])
    assert starts[0] == 0 and starts[-1] + context + 1 == corpus.val.size


# --- schedules

T = 100
PEAK = 0.3


def _values(kind, **kw):
    return tg.schedule_values(tg.make_schedule(kind, peak=PEAK, horizon=T, **kw), T)


def test_cosine_closed_form_and_optax():
    v = _values("cosine")
    assert_allclose(v[0], PEAK, rtol=EXACT)
    assert_allclose(v[T // 2], PEAK / 2, rtol=EXACT)
    assert_allclose(v[T - 1], PEAK * 0.5 * (1 + math.cos(math.pi * (T - 1) / T)), rtol=1e-12)
    reference = np.array([optax.cosine_decay_schedule(PEAK, T)(t) for t in range(T)])
    assert_allclose(v, reference, rtol=1e-6, atol=1e-9)  # optax computes in float32


def test_linear_closed_form_and_optax():
    v = _values("linear")
    assert_allclose(v, PEAK * (1 - np.arange(T) / T), rtol=1e-14)
    reference = np.array([optax.linear_schedule(PEAK, 0.0, T)(t) for t in range(T)])
    assert_allclose(v, reference, rtol=1e-6, atol=1e-9)


def test_constant_schedule():
    assert_allclose(_values("constant"), np.full(T, PEAK), rtol=EXACT)


def test_wsd_stable_then_sqrt_cooldown():
    v = _values("wsd", cooldown=0.2)
    t0 = 80
    assert_allclose(v[:t0], PEAK, rtol=EXACT)
    t = np.arange(t0, T)
    assert_allclose(v[t0:], PEAK * (1 - np.sqrt((t - t0) / (T - t0))), rtol=1e-14)
    assert_allclose(v[84], PEAK * (1 - math.sqrt(4 / 20)), rtol=1e-14)
    lin = _values("wsd-linear", cooldown=0.2)
    assert_allclose(lin[:t0], PEAK, rtol=EXACT)
    assert_allclose(lin[t0:], PEAK * (1 - (t - t0) / (T - t0)), rtol=1e-14)
    assert_allclose(lin[90], PEAK / 2, rtol=1e-14)
    assert_allclose(_values("wsd", cooldown=0.0), np.full(T, PEAK), rtol=EXACT)


def test_warmup_and_floor():
    w = 10
    v = _values("cosine", warmup=w)
    assert_allclose(v[:w], PEAK * np.arange(1, w + 1) / w, rtol=1e-14)
    assert_allclose(v[w + (T - w) // 2], PEAK / 2, rtol=1e-14)
    floor = 0.01
    f = tg.make_schedule("linear", peak=PEAK, horizon=T, floor=floor)
    assert_allclose(float(f(T // 2)), floor + (PEAK - floor) / 2, rtol=1e-14)
    assert_allclose(float(f(T)), floor, rtol=1e-14)
    assert_allclose(float(f(10 * T)), floor, rtol=1e-14)  # held past the horizon


def test_schedules_are_jit_safe():
    for kind in tg.KINDS:
        f = tg.make_schedule(kind, peak=PEAK, horizon=T, warmup=5)
        eager = tg.schedule_values(f, T)
        jitted = np.array([float(jax.jit(f)(jnp.int32(t))) for t in (0, 4, 50, 85, 99)])
        assert_allclose(jitted, eager[[0, 4, 50, 85, 99]], rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "step"}, "kind"),
        ({"peak": 0.0}, "peak"),
        ({"peak": -1e-3}, "peak"),
        ({"peak": float("nan")}, "peak"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.5}, "horizon"),
        ({"horizon": True}, "horizon"),
        ({"warmup": T}, "warmup"),
        ({"cooldown": 1.5}, "cooldown"),
        ({"floor": PEAK}, "floor"),
        ({"kind": "wsd", "warmup": 90, "cooldown": 0.2}, "warmup"),
    ],
)
def test_make_schedule_rejects_bad_arguments(kwargs, name):
    args = {"kind": "cosine", "peak": PEAK, "horizon": T, **kwargs}
    kind = args.pop("kind")
    with pytest.raises(ValueError, match=f"`{name}`") as info:
        tg.make_schedule(kind, **args)
    assert repr(kwargs[name]) in str(info.value)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_schedule_from_file_round_trip(tmp_path, suffix):
    lr = 0.05 * (1 + np.arange(40)) ** -0.5
    path = save_schedule(Schedule(learning_rate=lr), tmp_path / f"designed{suffix}")
    f = tg.schedule_from_file(path)
    assert_array_equal(tg.schedule_values(f, 40), lr)  # a gather: exact
    assert float(f(1000)) == lr[-1]  # past the horizon: the last value
    scaled = tg.schedule_values(tg.schedule_from_file(path, peak=0.2), 40)
    assert_allclose(scaled, lr / lr.max() * 0.2, rtol=EXACT)
    stretched = tg.schedule_values(tg.schedule_from_file(path, horizon=80), 80)
    assert_allclose(stretched[::2], lr, rtol=EXACT)  # step 2s of the stretch is step s of the design
    assert f.description["kind"] == "file"
    with pytest.raises(ValueError, match=r"`horizon`.*0"):
        tg.schedule_from_file(path, horizon=0)
    with pytest.raises(ValueError, match=r"`peak`.*-1"):
        tg.schedule_from_file(path, peak=-1.0)


# --- model


def test_model_is_causal_float32_and_starts_near_uniform():
    model = eqx.filter_jit(tg.GPT)(256, 16, 1, 2, 16, key=jax.random.PRNGKey(0))
    call = eqx.filter_jit(model.__call__)
    tokens = jnp.arange(16, dtype=jnp.int32) * 7
    changed = tokens.at[9].set(200)
    a, b = np.asarray(call(tokens)), np.asarray(call(changed))
    assert a.dtype == np.float32 and a.shape == (16, 256)
    assert_array_equal(a[:9], b[:9])  # earlier positions do not see the change
    assert not np.allclose(a[9:], b[9:])
    loss = float(eqx.filter_jit(tg.loss_fn)(model, tokens[None], changed[None]))
    assert abs(loss - math.log(256)) < 0.05
    with pytest.raises(ValueError, match=r"`d_model`.*18"):
        tg.GPT(256, 18, 1, 4, 16, key=jax.random.PRNGKey(0))


# --- training


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, corpus):
    config = tg.TrainConfig(**TINY)
    schedule = tg.make_schedule("cosine", peak=1e-2, horizon=config.steps, warmup=2)
    log = tmp_path_factory.mktemp("run") / "cosine.csv"
    result = tg.train(config, schedule, log_path=log, corpus=corpus)
    return config, schedule, log, result


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_training_log_format(tiny_run, corpus):
    config, schedule, log, result = tiny_run
    rows = _rows(log)
    assert rows[0] == ["step", "learning_rate", "train_loss", "val_loss"]
    body = rows[1:]
    T_ = config.steps
    assert len(body) == T_ + 1
    assert [int(r[0]) for r in body] == list(range(T_ + 1))
    eval_steps = {0, 6, 12, 18, T_}
    for t, row in enumerate(body):
        assert (row[3] != "") == (t in eval_steps), row
        assert row[2] != "" and math.isfinite(float(row[2]))
    lrs = np.array([float(r[1]) for r in body[:-1]])
    assert body[-1][1] == ""
    assert_array_equal(lrs, tg.schedule_values(schedule, T_))  # repr round trip: exact
    assert_array_equal(result.learning_rates, lrs)
    assert_array_equal(result.val_steps, sorted(eval_steps))
    assert_array_equal(result.val_losses, [float(body[t][3]) for t in sorted(eval_steps)])
    assert_array_equal(result.train_losses, [float(r[2]) for r in body])
    sidecar = json.loads(tg.sidecar_path(log).read_text())
    assert sidecar["config"] == {**TINY, "optimizer": "adamw", "weight_decay": 0.0, "grad_clip": 1.0}
    assert sidecar["schedule"]["kind"] == "cosine"
    assert sidecar["corpus"]["train_sha256"] == corpus.train_sha256
    assert sidecar["final_val_loss"] == result.final_val_loss
    assert not list(log.parent.glob(".*.tmp"))  # the atomic writes left no temporary file


def test_training_loss_semantics(tiny_run, corpus):
    config, _, _, result = tiny_run
    model = eqx.filter_jit(tg.GPT)(256, 16, 1, 2, 16, key=jax.random.PRNGKey(config.seed))
    loss = eqx.filter_jit(tg.loss_fn)
    x, y = next(tg.batches(corpus.train, config.batch_size, config.context, config.seed))
    # row 0: the initial parameters on the batch that update 0 uses
    assert_allclose(result.train_losses[0], float(loss(model, x, y)), rtol=LOSS_RTOL)
    val = tg.validation_batches(corpus.val, config.eval_batches, config.batch_size, config.context)
    assert_allclose(result.val_losses[0], np.mean([float(loss(model, *b)) for b in val]), rtol=LOSS_RTOL)
    assert_allclose(
        result.final_val_loss, np.mean([float(loss(result.model, *b)) for b in val]), rtol=LOSS_RTOL
    )
    assert abs(result.val_losses[0] - math.log(256)) < 0.05
    assert result.final_val_loss < result.val_losses[0] - 0.5
    assert np.mean(result.train_losses[-5:]) < result.train_losses[0] - 0.5
    assert {leaf.dtype for leaf in jax.tree.leaves(eqx.filter(result.model, eqx.is_array))} == {
        np.dtype("float32")
    }


def test_zero_learning_rate_leaves_the_model_unchanged(corpus, tiny_run):
    config = tiny_run[0]
    result = tg.train(config, lambda count: jnp.zeros((), jnp.float64), corpus=corpus)
    assert_array_equal(result.learning_rates, np.zeros(config.steps))
    assert_allclose(result.val_losses, np.full(result.val_losses.size, result.val_losses[0]), rtol=0)


def test_sgd_with_a_schedule_file(tmp_path, corpus):
    config = tg.TrainConfig(**{**TINY, "optimizer": "sgd"})
    lr = np.linspace(0.5, 0.05, config.steps)
    path = save_schedule(Schedule(learning_rate=lr), tmp_path / "designed.json")
    result = tg.train(config, tg.schedule_from_file(path), log_path=tmp_path / "sgd.csv", corpus=corpus)
    assert_array_equal(result.learning_rates, lr)
    assert result.final_val_loss < result.val_losses[0] - 0.3
    assert json.loads((tmp_path / "sgd.json").read_text())["schedule"]["kind"] == "file"


def test_lion_moves_every_matrix_entry_by_the_learning_rate_plus_its_decay(corpus):
    # Lion's first update from zero momentum is lr * (sign(g) + wd * p) on the decayed matrices and
    # lr * sign(g) elsewhere: with clipping off, every entry with a nonzero gradient moves by exactly that much
    lr, wd = 1e-3, 0.3
    config = tg.TrainConfig(
        **{**TINY, "steps": 1, "optimizer": "lion", "weight_decay": wd, "grad_clip": None}
    )
    model = tg.GPT(
        256, config.d_model, config.n_layers, config.n_heads, config.context, key=jax.random.PRNGKey(0)
    )
    params = eqx.filter(model, eqx.is_array)
    optimizer = tg.make_optimizer(config, lambda count: lr)
    grads = jax.tree.map(
        lambda p: jnp.ones_like(p) * jnp.where(jnp.arange(p.size).reshape(p.shape) % 2, 1, -1), params
    )
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    for p, g, u in zip(
        jax.tree.leaves(params), jax.tree.leaves(grads), jax.tree.leaves(updates), strict=True
    ):
        decay = wd * np.asarray(p) if p.ndim >= 2 else 0.0
        assert_allclose(np.asarray(u), -lr * (np.sign(np.asarray(g)) + decay), rtol=1e-6, atol=1e-12)
    result = tg.train(
        tg.TrainConfig(**{**TINY, "optimizer": "lion", "weight_decay": wd}), lambda count: 3e-3, corpus=corpus
    )
    assert result.final_val_loss < result.val_losses[0] - 0.3


def test_cli_smoke(tmp_path, capsys, monkeypatch, corpus):
    # the package re-exports the function `train`, which shadows the module of the same name
    monkeypatch.setattr(importlib.import_module("examples.tinygpt.train"), "_default_corpus", lambda: corpus)
    out = tmp_path / "runs" / "linear.csv"
    args = ["--schedule", "linear", "--peak", "1e-2", "--out", str(out), "--quiet"]
    for key, value in TINY.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert cli_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["log"] == str(out) and len(_rows(out)) == TINY["steps"] + 2
    with pytest.raises(SystemExit) as info:
        cli_main(["--schedule", "step", "--peak", "1e-2"])
    assert info.value.code == 2
    assert "`kind`" in capsys.readouterr().err


def test_cli_trains_a_schedule_file_for_its_own_updates(tmp_path, capsys, monkeypatch, corpus):
    """A pilot file from `schedopt pilots` trains for exactly its updates (not stretched to the loop's
    default), and logs a validation loss every T / 20 updates unless told otherwise."""
    monkeypatch.setattr(importlib.import_module("examples.tinygpt.train"), "_default_corpus", lambda: corpus)
    lr = np.linspace(1e-2, 1e-3, 40)
    path = save_schedule(Schedule(learning_rate=lr), tmp_path / "pilot.json")
    shape = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("steps", "eval_every")]
    out = tmp_path / "own.csv"
    assert cli_main(["--schedule", str(path), "--out", str(out), "--quiet", *shape]) == 0
    rows = _rows(out)[1:]
    assert len(rows) == 41 and [float(r[1]) for r in rows[:-1]] == pytest.approx(lr, rel=1e-6)
    assert [int(r[0]) for r in rows if r[3]] == list(range(0, 41, 2))  # every 40 // 20 = 2 updates
    stretched = tmp_path / "stretched.csv"
    args = ["--schedule", str(path), "--steps", "80", "--eval-every", "10", "--out", str(stretched)]
    assert cli_main([*args, "--quiet", *shape]) == 0
    rows = _rows(stretched)[1:]
    assert len(rows) == 81 and sum(1 for r in rows if r[3]) == 9
    capsys.readouterr()


# --- configuration


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("d_model", 0),
        ("n_layers", -1),
        ("n_heads", 2.0),
        ("context", True),
        ("batch_size", 0),
        ("steps", "100"),
        ("optimizer", "adam"),
        ("weight_decay", -0.1),
        ("weight_decay", float("inf")),
        ("grad_clip", 0.0),
        ("eval_every", 0),
        ("eval_batches", -2),
        ("seed", -1),
    ],
)
def test_bad_config_field_raises_naming_it(field, value):
    with pytest.raises(ValueError, match=f"`{field}`") as info:
        tg.TrainConfig(**{field: value})
    assert repr(value) in str(info.value)


def test_config_cross_field_checks():
    with pytest.raises(ValueError, match=r"`d_model`.*multiple of `n_heads`"):
        tg.TrainConfig(d_model=64, n_heads=3)
    with pytest.raises(ValueError, match=r"`weight_decay`.*sgd"):
        tg.TrainConfig(optimizer="sgd", weight_decay=0.1)
    assert tg.TrainConfig(grad_clip=None).grad_clip is None
