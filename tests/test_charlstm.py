"""The second training loop (examples/charlstm: a byte LSTM in PyTorch) logs what `schedopt fit` reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from examples.charlstm import LSTMConfig
from examples.tinygpt.data import Corpus

torch = pytest.importorskip("torch")

from examples.charlstm import train  # noqa: E402
from examples.charlstm.__main__ import main as cli_main  # noqa: E402
from examples.tinygpt.schedules import make_schedule  # noqa: E402
from schedopt.calibration.pilots import read_pilot  # noqa: E402

TINY = LSTMConfig(embed=8, hidden=16, context=16, batch_size=4, steps=40, eval_every=10, eval_batches=2)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    text = np.frombuffer(b"def f(x):\n    return x + 1\n" * 400, dtype=np.uint8)
    noise = rng.integers(0, 256, 200, dtype=np.uint8)
    return Corpus(np.concatenate([text, noise]), text[:4000].copy(), "", "", 1, 1, "synthetic")


@pytest.mark.parametrize(
    "field, value",
    [
        ("hidden", 0),
        ("steps", 1.5),
        ("weight_decay", -1.0),
        ("grad_clip", 0.0),
        ("seed", -1),
        ("embed", True),
    ],
)
def test_a_bad_setting_names_the_field_and_the_value(field, value):
    with pytest.raises(ValueError, match=f"`{field}`.*{value!r}"):
        LSTMConfig(**{field: value})


def test_the_log_is_a_pilot_with_the_schedules_rates_and_the_run_is_a_function_of_its_seed(tmp_path, corpus):
    schedule = make_schedule("wsd", peak=3e-3, horizon=TINY.steps, warmup=5, cooldown=0.25)
    first = train(TINY, schedule, log_path=tmp_path / "a.csv", corpus=corpus)
    again = train(TINY, schedule, log_path=tmp_path / "b.csv", corpus=corpus)
    np.testing.assert_array_equal(first.train_losses, again.train_losses)
    pilot = read_pilot(tmp_path / "a.csv")
    np.testing.assert_allclose(pilot.learning_rate, np.asarray([schedule(t) for t in range(TINY.steps)]))
    assert pilot.loss_steps.tolist() == [0, 10, 20, 30, 40]  # validation losses, the column fit prefers
    np.testing.assert_allclose(pilot.losses, first.val_losses)
    assert first.val_losses[-1] < first.val_losses[0] - 0.5  # it learns the repeated line
    sidecar = json.loads((tmp_path / "a.json").read_text())
    assert sidecar["optimizer"]["name"] == "torch.optim.AdamW" and sidecar["config"]["hidden"] == 16


def test_the_gradient_norm_is_logged_before_clipping_and_clipping_acts_above_it(corpus):
    """A clip far above every norm changes nothing; one below the first norms clips those updates (and so the run),
    and the norms it records are the same before clipping as without it up to that first clipped update."""
    schedule = make_schedule("wsd", peak=0.3, horizon=TINY.steps, warmup=5, cooldown=0.25)
    sgd = {**TINY.__dict__, "optimizer": "sgd", "weight_decay": 0.0}
    free = train(LSTMConfig(**{**sgd, "grad_clip": None}), schedule, corpus=corpus)
    assert free.grad_norms.shape == (TINY.steps,) and np.all(
        np.isfinite(free.grad_norms) & (free.grad_norms > 0)
    )
    loose = train(LSTMConfig(**{**sgd, "grad_clip": 10 * free.grad_norms.max()}), schedule, corpus=corpus)
    np.testing.assert_array_equal(loose.train_losses, free.train_losses)
    np.testing.assert_array_equal(loose.grad_norms, free.grad_norms)
    limit = 0.5 * free.grad_norms[0]
    tight = train(LSTMConfig(**{**sgd, "grad_clip": limit}), schedule, corpus=corpus)
    assert tight.grad_norms[0] == free.grad_norms[0] > limit  # measured before it was clipped
    assert not np.array_equal(tight.train_losses, free.train_losses)


def test_the_learning_rate_reaches_the_optimiser_update_by_update(corpus):
    """A zero learning rate after update 10 freezes the weights: the train losses repeat a fixed model's."""
    import jax.numpy as jnp

    frozen = train(TINY, lambda t: jnp.where(t < 10, 3e-3, 0.0), corpus=corpus)
    assert frozen.val_losses[1] == pytest.approx(frozen.val_losses[-1], abs=1e-6)


def test_the_command_line_rejects_a_bad_option_with_its_value(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--schedule", "cosine", "--peak", "1e-3", "--hidden", "0"])
    assert exit_.value.code == 2
    assert "`hidden` must be a positive integer, got 0" in capsys.readouterr().err


def test_rmsprop_moves_each_weight_by_the_closed_form_first_step_and_learns(tmp_path, corpus):
    # from a zero square average, RMSprop's first step is lr * g / (sqrt((1 - alpha) g^2) + eps): every entry
    # with a nonzero gradient moves by lr / sqrt(1 - alpha) against its gradient's sign (alpha 0.95: x 4.47)
    from examples.charlstm import RMSPROP, CharLSTM
    from examples.charlstm.training import _optimizer

    config = LSTMConfig(**{**TINY.__dict__, "optimizer": "rmsprop", "weight_decay": 0.0})
    torch.manual_seed(0)
    model = CharLSTM(config)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = _optimizer(config, model, 1e-3)
    for p in model.parameters():
        p.grad = torch.where(torch.arange(p.numel()).reshape(p.shape) % 2 == 0, 0.5, -2.0)
    optimizer.step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        g = p.grad.numpy().astype(np.float64)
        step = 1e-3 * g / (np.sqrt((1 - RMSPROP["alpha"]) * g**2) + RMSPROP["eps"])
        np.testing.assert_allclose((p0 - p.detach()).numpy(), step, rtol=1e-4)  # float32 weights
    result = train(config, lambda t: 2e-3, log_path=tmp_path / "r.csv", corpus=corpus)
    assert result.final_val_loss < result.val_losses[0] - 0.5
    assert json.loads((tmp_path / "r.json").read_text())["optimizer"] == {
        "name": "torch.optim.RMSprop",
        **RMSPROP,
    }


def test_nesterov_sgd_takes_the_closed_form_first_two_steps_and_learns(tmp_path, corpus):
    # torch's Nesterov SGD with momentum m: buffer b_1 = g, step lr (g + m b_1) = lr (1 + m) g; with the same
    # gradient again b_2 = m g + g, step lr (g + m b_2) = lr (1 + m + m^2) g
    from examples.charlstm import SGD, CharLSTM
    from examples.charlstm.training import _optimizer

    config = LSTMConfig(**{**TINY.__dict__, "optimizer": "sgd", "weight_decay": 0.0})
    torch.manual_seed(0)
    model = CharLSTM(config)
    m = SGD["momentum"]
    optimizer = _optimizer(config, model, 0.1)
    for factor in (1 + m, 1 + m + m * m):
        before = [p.detach().clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = torch.where(torch.arange(p.numel()).reshape(p.shape) % 2 == 0, 0.5, -2.0)
        optimizer.step()
        for p, p0 in zip(model.parameters(), before, strict=True):
            step = 0.1 * factor * p.grad.numpy().astype(np.float64)
            np.testing.assert_allclose((p0 - p.detach()).numpy(), step, rtol=1e-4)  # float32 weights
    result = train(config, lambda t: 0.3, log_path=tmp_path / "r.csv", corpus=corpus)
    assert result.final_val_loss < result.val_losses[0] - 0.5
    assert json.loads((tmp_path / "r.json").read_text())["optimizer"] == {"name": "torch.optim.SGD", **SGD}


def test_rmsprop_takes_no_weight_decay_and_the_command_line_defaults_it_to_zero(
    tmp_path, corpus, monkeypatch
):
    with pytest.raises(ValueError, match=r"`weight_decay` must be 0 with optimizer 'rmsprop'.*0\.01"):
        LSTMConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match=r"`weight_decay` must be 0 with optimizer 'sgd'.*0\.01"):
        LSTMConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="`optimizer` must be one of adamw, rmsprop, sgd, got 'adam'"):
        LSTMConfig(optimizer="adam")
    import examples.charlstm.__main__ as entry

    seen = {}
    monkeypatch.setattr(entry, "train", lambda config, schedule, **kw: seen.setdefault("c", config) and 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli_main(["--schedule", "constant", "--peak", "1e-3", "--optimizer", "rmsprop", "--steps", "5"])
    assert seen["c"].optimizer == "rmsprop" and seen["c"].weight_decay == 0.0
