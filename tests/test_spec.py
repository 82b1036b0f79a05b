"""TOML specs: the shipped problems, the dump/parse round trip and every kind of bad input."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from helpers import PROBLEMS, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from schedopt.dynamics.stability import stability_threshold
from schedopt.errors import SpecError
from schedopt.problem import ControlSpec, Model, Problem, Training
from schedopt.spec import (
    MAX_MODES,
    SCHEMA_VERSION,
    default_problem,
    dump_problem,
    load_problem,
    parse_problem,
)

SHIPPED = ("easy-phase", "hard-phase", "boundary", "custom-spectrum")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "schedopt" / "data" / "default.toml"

EXACT_RTOL = 1e-14  # closed forms computed two ways in float64
CSV_RTOL = 1e-9  # the shipped CSV holds 10 significant digits
MARGIN_LO, MARGIN_HI = 0.85, 0.95  # learning-rate max / stability threshold ("~10% below")


# --- helpers


def shipped_text(name: str) -> str:
    return (PROBLEMS / f"{name}.toml").read_text(encoding="utf-8")


EASY = shipped_text("easy-phase")


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once in the spec"
    return text.replace(old, new)


def write_spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def expect_error(tmp_path: Path, text: str, key: str | None, *values: str) -> SpecError:
    """Load ``text`` from a file; expect one SpecError naming the file, the key and the values."""
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_problem(path)
    err = info.value
    message = str(err)
    assert type(err) is SpecError
    assert err.path == str(path)
    assert message.startswith(f"{path}: ")
    assert err.key == key
    if key is not None:
        assert f": {key}: " in message
    for value in values:
        assert value in message, f"{value!r} not in {message!r}"
    return err


def assert_same_problem(p: Problem, q: Problem) -> None:
    assert p.name == q.name
    assert_array_equal(p.model.eigenvalues, q.model.eigenvalues)
    assert_array_equal(p.model.initial_error, q.model.initial_error)
    assert p.model.noise_variance == q.model.noise_variance
    assert p.model.residual == q.model.residual
    assert (p.model.a, p.model.b) == (q.model.a, q.model.b)
    assert p.training == q.training
    assert dict(p.controls) == dict(q.controls)
    assert p.sample_budget == q.sample_budget


CUSTOM_INLINE = """\
schema_version = 1
name = "inline"
[model]
kind = "custom"
eigenvalues = [1.0, 0.5, 0.25]
initial_error = [0.2, 0.4, 0.8]
noise_std = 0.1
residual = 0.01
[training]
horizon = 100
[controls.learning_rate]
min = 0.0
max = 0.3
blocks = 10
"""


def custom_file_spec(file: str) -> str:
    return edit(
        CUSTOM_INLINE,
        "eigenvalues = [1.0, 0.5, 0.25]\ninitial_error = [0.2, 0.4, 0.8]\n",
        f'file = "{file}"\n',
    )


# --- shipped problems


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_problem_loads_with_safe_learning_rate_cap(name):
    path = PROBLEMS / f"{name}.toml"
    problem = load_problem(path)
    assert problem.name == name
    assert problem.source.path == str(path)
    assert problem.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    threshold = stability_threshold(problem.model, problem.training.batch_size)
    assert MARGIN_LO * threshold < problem.learning_rate.max < MARGIN_HI * threshold


def test_easy_phase_numbers():
    problem = load_problem(PROBLEMS / "easy-phase.toml")
    model = problem.model
    assert (model.a, model.b, model.n_modes) == (2.5, 1.2, 1000)
    assert model.a > model.b  # easy phase
    k = np.arange(1, 1001, dtype=np.float64)
    assert_allclose(model.eigenvalues, k**-1.2, rtol=EXACT_RTOL)
    power = model.eigenvalues * model.initial_error
    assert_allclose(power / power[0], k**-2.5, rtol=EXACT_RTOL)
    assert_allclose(model.initial_loss, 1.0, rtol=EXACT_RTOL)
    assert model.noise_variance == 0.25
    assert model.residual == 0.0
    assert problem.horizon == 10_000
    assert problem.training.batch_size == 1.0
    assert list(problem.controls) == ["learning_rate"]
    assert problem.learning_rate == ControlSpec(
        "learning_rate", 0.0, 0.35, blocks=100, grid="geometric-both", parameterisation="linear"
    )


def test_hard_phase_residual_is_the_hurwitz_zeta_tail():
    model = load_problem(PROBLEMS / "hard-phase.toml").model
    assert model.b > model.a  # hard phase
    a, n = model.a, model.n_modes
    # normalised so that kept loss + tail = 1: the tail is zeta(a, N+1) / zeta(a)
    expected = scipy.special.zeta(a, n + 1) / scipy.special.zeta(a, 1)
    assert_allclose(model.residual, expected, rtol=EXACT_RTOL)
    assert_allclose(model.initial_loss + model.residual, 1.0, rtol=EXACT_RTOL)
    assert_allclose(model.effective_noise, 0.25 + expected, rtol=EXACT_RTOL)


def test_boundary_has_equal_exponents():
    model = load_problem(PROBLEMS / "boundary.toml").model
    assert model.a == model.b == 2.0
    assert_allclose(model.initial_loss, 1.0, rtol=EXACT_RTOL)


def test_custom_spectrum_matches_its_documented_formula():
    problem = load_problem(PROBLEMS / "custom-spectrum.toml")
    model = problem.model
    assert model.n_modes == 200
    assert not model.is_powerlaw
    k = np.arange(1, 201, dtype=np.float64)
    knee = 20
    lam = np.where(k <= knee, k**-1.1, knee**-1.1 * (k / knee) ** -2.5)
    power = k**-1.5 * (1 + 4 * np.exp(-(((k - 60) / 8) ** 2)))
    assert_allclose(model.eigenvalues, lam, rtol=CSV_RTOL)
    assert_allclose(model.eigenvalues * model.initial_error, power / power.sum(), rtol=CSV_RTOL)
    assert_allclose(model.initial_loss, 1.0, rtol=CSV_RTOL)
    assert model.noise_variance == 0.25


def test_default_problem_is_the_easy_phase_byte_for_byte():
    assert DEFAULT_DATA.read_bytes() == (PROBLEMS / "easy-phase.toml").read_bytes()
    problem = default_problem()
    assert_same_problem(problem, load_problem(PROBLEMS / "easy-phase.toml"))
    assert problem.source.text == EASY
    assert problem.source.sha256 == hashlib.sha256(EASY.encode()).hexdigest()


def test_schema_version_constant_matches_the_shipped_specs():
    for name in SHIPPED:
        assert f"schema_version = {SCHEMA_VERSION} " in shipped_text(name)


def test_readme_documents_every_key():
    from schedopt.spec import _schema as spec

    readme = (PROBLEMS / "README.md").read_text(encoding="utf-8")
    keys = {
        *spec._TOP_KEYS,
        *spec._POWERLAW_KEYS,
        *spec._CUSTOM_KEYS,
        *spec._TRAINING_KEYS,
        *spec._CONTROL_KEYS,
        *spec._NETWORK_KEYS,
    } - {"model", "training", "controls", "network"}
    for key in sorted(keys):
        assert f"| `{key}` |" in readme, key
    free_offset = readme.split("`[network.free_offset]` holds", 1)[1].split("\n\n", 1)[0]
    for key in spec._FREE_OFFSET_KEYS:
        assert f"`{key}`" in free_offset, key


def test_readme_example_parses():
    readme = (PROBLEMS / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    problem = parse_problem(EASY.split("[training]")[0] + example)
    assert list(problem.controls) == ["learning_rate", "batch_size", "momentum"]
    assert problem.sample_budget == 200_000
    assert problem.learning_rate.max < stability_threshold(problem.model, 4)


# --- model options


def test_raw_initial_loss_gives_exact_power_law():
    text = edit(EASY, "initial_loss = 1.0 ", 'initial_loss = "raw" ')
    model = parse_problem(text).model
    k = np.arange(1, 1001, dtype=np.float64)
    assert_allclose(model.eigenvalues * model.initial_error, k**-2.5, rtol=EXACT_RTOL)
    assert_allclose(model.initial_error, k ** (1.2 - 2.5), rtol=EXACT_RTOL)


def test_raw_initial_loss_with_finite_size_residual_is_unnormalised_zeta_tail():
    text = edit(EASY, "initial_loss = 1.0 ", 'initial_loss = "raw" ')
    text = edit(text, "finite_size = false", "finite_size = true")
    model = parse_problem(text).model
    assert_allclose(model.residual, scipy.special.zeta(2.5, 1001), rtol=EXACT_RTOL)


def test_integral_float_horizon_is_accepted():
    problem = parse_problem(edit(EASY, "horizon = 10000 ", "horizon = 1e4 "))
    assert problem.horizon == 10_000
    assert isinstance(problem.horizon, int)


def test_defaults_of_optional_keys():
    text = """\
schema_version = 1
name = "minimal"
[model]
a = 2.0
b = 1.5
n_modes = 50
[training]
horizon = 200
[controls.learning_rate]
min = 0.0
max = 0.4
"""
    problem = parse_problem(text)
    assert problem.model.noise_variance == 0.0
    assert_allclose(problem.model.initial_loss, 1.0, rtol=EXACT_RTOL)
    assert problem.model.residual == 0.0
    assert problem.training == Training(horizon=200, batch_size=1.0, momentum=0.0)
    assert problem.learning_rate == ControlSpec("learning_rate", 0.0, 0.4)
    assert problem.sample_budget is None
    assert problem.source.path is None


def test_custom_inline_arrays():
    model = parse_problem(CUSTOM_INLINE).model
    assert_array_equal(model.eigenvalues, [1.0, 0.5, 0.25])
    assert_array_equal(model.initial_error, [0.2, 0.4, 0.8])
    assert model.noise_variance == 0.1**2
    assert model.residual == 0.01


def test_custom_csv_with_columns_in_any_order(tmp_path):
    (tmp_path / "s.csv").write_text("# comment\ninitial_error, eigenvalues\n0.2,1.0\n0.4,0.5\n")
    model = load_problem(write_spec(tmp_path, custom_file_spec("s.csv"))).model
    assert_array_equal(model.eigenvalues, [1.0, 0.5])
    assert_array_equal(model.initial_error, [0.2, 0.4])


def test_custom_npz(tmp_path):
    np.savez(tmp_path / "s.npz", eigenvalues=np.array([1.0, 0.1]), initial_error=np.array([1.0, 2.0]))
    model = load_problem(write_spec(tmp_path, custom_file_spec("s.npz"))).model
    assert_array_equal(model.eigenvalues, [1.0, 0.1])
    assert_allclose(model.initial_loss, 1.2, rtol=EXACT_RTOL)


def test_parse_problem_resolves_custom_file_against_base_dir(tmp_path):
    (tmp_path / "s.csv").write_text("eigenvalues,initial_error\n1.0,0.5\n")
    model = parse_problem(custom_file_spec("s.csv"), base_dir=tmp_path).model
    assert_array_equal(model.initial_error, [0.5])


def test_optional_controls_and_sample_budget():
    text = (
        edit(EASY, "momentum = 0.0 ", "sample_budget = 1e5 ")
        + "\n[controls.batch_size]\nmin = 1\nmax = 64\nblocks = 20\nparameterisation = 'constant'\n"
        + "\n[controls.momentum]\nmin = 0.0\nmax = 0.9\ngrid = 'custom'\nedges = [0, 5000, 10000]\n"
    )
    problem = parse_problem(text)
    assert list(problem.controls) == ["learning_rate", "batch_size", "momentum"]
    assert problem.sample_budget == 1e5
    assert problem.controls["batch_size"] == ControlSpec(
        "batch_size", 1.0, 64.0, blocks=20, parameterisation="constant"
    )
    assert problem.controls["momentum"].edges == (0, 5000, 10000)
    assert problem.controls["momentum"].blocks == 2


# --- dump / parse


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_of_shipped_problems(name):
    problem = load_problem(PROBLEMS / f"{name}.toml")
    text = dump_problem(problem)
    again = parse_problem(text)
    assert_same_problem(problem, again)
    assert dump_problem(again) == text
    expected_kind = '"custom"' if name == "custom-spectrum" else '"powerlaw"'
    assert f"kind = {expected_kind}" in text


ROUND_TRIP_MODELS = {
    "raw": lambda: Model.powerlaw(2.5, 1.2, 300, noise_std=0.3, initial_loss="raw"),
    "finite-size": lambda: Model.powerlaw(1.5, 2.5, 300, noise_std=0.7, finite_size=True),
    "odd-loss": lambda: Model.powerlaw(1.7, 1.3, 257, initial_loss=0.8734512, finite_size=True),
    "custom": lambda: Model(
        np.array([1.0, 1 / 3, 0.1, 1e-7]), np.array([0.0, 2.5, 1 / 7, 3e5]), noise_variance=0.1
    ),
    "ragged-powerlaw": lambda: Model(
        Model.powerlaw(2.0, 2.0, 10).eigenvalues, np.linspace(1.0, 2.0, 10), a=2.0, b=2.0
    ),
}


@pytest.mark.parametrize("kind", ROUND_TRIP_MODELS)
def test_round_trip_of_models(kind):
    model = ROUND_TRIP_MODELS[kind]()
    problem = Problem(
        name='odd "name" é',  # quotes escaped; a backslash is refused (a path separator)
        model=model,
        training=Training(horizon=1000, batch_size=2.0, momentum=0.5),
        controls={
            "learning_rate": ControlSpec("learning_rate", 0.0, 0.2, blocks=7, grid="geometric-end"),
            "batch_size": ControlSpec("batch_size", 1.0, 8.0, grid="custom", edges=(0, 1, 999, 1000)),
        },
        sample_budget=4321.5,
    )
    text = dump_problem(problem)
    again = parse_problem(text)
    if kind == "ragged-powerlaw":  # a, b that do not generate the arrays are not kept
        assert 'kind = "custom"' in text
        assert (again.model.a, again.model.b) == (None, None)
        problem = problem.replace(model=Model(model.eigenvalues, model.initial_error))
    assert_same_problem(problem, again)
    assert dump_problem(again) == text


# --- bad input: one test each


def test_error_unknown_top_level_key(tmp_path):
    expect_error(tmp_path, "colour = 'red'\n" + EASY, "colour", "unknown key", "'red'")


def test_error_unknown_nested_key(tmp_path):
    text = edit(EASY, "n_modes = 1000 ", "n_mode = 1000 ")
    expect_error(tmp_path, text, "model.n_mode", "unknown key", "1000")


def test_error_unknown_control_key(tmp_path):
    text = edit(EASY, "blocks = 100 ", "block = 100 ")
    expect_error(tmp_path, text, "controls.learning_rate.block", "unknown key", "100")


def test_error_unknown_control_name(tmp_path):
    text = EASY + "\n[controls.lr]\nmin = 0\nmax = 1\n"
    expect_error(tmp_path, text, "controls.lr", "unknown control", "learning_rate")


def test_error_powerlaw_key_in_custom_model(tmp_path):
    text = edit(CUSTOM_INLINE, "residual = 0.01", "residual = 0.01\nb = 1.5")
    expect_error(tmp_path, text, "model.b", 'kind = "custom"', "1.5")


@pytest.mark.parametrize(
    ("old", "key"),
    [
        ("schema_version = 1 ", "schema_version"),
        ('name = "easy-phase" ', "name"),
        ("a = 2.5 ", "model.a"),
        ("b = 1.2 ", "model.b"),
        ("n_modes = 1000 ", "model.n_modes"),
        ("horizon = 10000 ", "training.horizon"),
        ("min = 0.0 ", "controls.learning_rate.min"),
        ("max = 0.35 ", "controls.learning_rate.max"),
    ],
)
def test_error_missing_required_key(tmp_path, old, key):
    text = edit(EASY, old, "# removed ")
    expect_error(tmp_path, text, key, "missing required key", repr(key.rsplit(".", 1)[-1]))


@pytest.mark.parametrize(("table", "key"), [("[model]", "model"), ("[training]", "training")])
def test_error_missing_required_table(tmp_path, table, key):
    text = edit(EASY, table, "[unused]")
    expect_error(tmp_path, text, "unused", "unknown key")  # the renamed table is reported first
    start = EASY.index(table)
    end = EASY.index("\n[", start + 1)
    expect_error(tmp_path, EASY[:start] + EASY[end + 1 :], key, "missing required key", repr(key))


def test_error_missing_learning_rate_control(tmp_path):
    text = edit(EASY, "[controls.learning_rate]", "[controls.momentum]")
    text = edit(text, "max = 0.35 ", "max = 0.9 ")
    expect_error(tmp_path, text, "controls.learning_rate", "missing required table")


@pytest.mark.parametrize(("old", "new", "key", "bad"), [
    ("a = 2.5 ", "a = 0 ", "model.a", "got 0"),
    ("a = 2.5 ", "a = -2.5 ", "model.a", "got -2.5"),
    ("b = 1.2 ", "b = 0.0 ", "model.b", "got 0.0"),
    ("b = 1.2 ", "b = -1 ", "model.b", "got -1"),
])  # fmt: skip
def test_error_non_positive_exponent(tmp_path, old, new, key, bad):
    expect_error(tmp_path, edit(EASY, old, new), key, "positive", bad)


def test_error_finite_size_needs_a_above_one(tmp_path):
    text = edit(EASY, "finite_size = false", "finite_size = true")
    text = edit(text, "a = 2.5 ", "a = 0.8 ")
    expect_error(tmp_path, text, "model.a", "greater than 1", "0.8")


@pytest.mark.parametrize("bad", ["0", "-5"])
def test_error_n_modes_below_one(tmp_path, bad):
    text = edit(EASY, "n_modes = 1000 ", f"n_modes = {bad} ")
    expect_error(tmp_path, text, "model.n_modes", "positive integer", f"got {bad}")


def test_error_n_modes_too_large(tmp_path):
    text = edit(EASY, "n_modes = 1000 ", f"n_modes = {10 * MAX_MODES} ")
    expect_error(tmp_path, text, "model.n_modes", str(MAX_MODES), str(10 * MAX_MODES))


def test_error_negative_noise(tmp_path):
    text = edit(EASY, "noise_std = 0.5 ", "noise_std = -0.5 ")
    expect_error(tmp_path, text, "model.noise_std", "non-negative", "-0.5")


def test_error_negative_noise_in_custom_model(tmp_path):
    text = edit(CUSTOM_INLINE, "noise_std = 0.1", "noise_std = -0.1")
    expect_error(tmp_path, text, "model.noise_std", "non-negative", "-0.1")


def test_error_non_integer_horizon(tmp_path):
    text = edit(EASY, "horizon = 10000 ", "horizon = 2.5 ")
    expect_error(tmp_path, text, "training.horizon", "positive integer", "2.5")


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_error_non_positive_horizon(tmp_path, bad):
    text = edit(EASY, "horizon = 10000 ", f"horizon = {bad} ")
    expect_error(tmp_path, text, "training.horizon", "positive integer", f"got {bad}")


@pytest.mark.parametrize(("old", "new", "key", "bad"), [
    ("a = 2.5 ", "a = nan ", "model.a", "nan"),
    ("b = 1.2 ", "b = inf ", "model.b", "inf"),
    ("noise_std = 0.5 ", "noise_std = +inf ", "model.noise_std", "inf"),
    ("horizon = 10000 ", "horizon = inf ", "training.horizon", "inf"),
    ("max = 0.35 ", "max = nan ", "controls.learning_rate.max", "nan"),
    ("min = 0.0 ", "min = -inf ", "controls.learning_rate.min", "-inf"),
    ("max = 0.35 ", "max = 1e999 ", "controls.learning_rate.max", "inf"),
])  # fmt: skip
def test_error_non_finite_number(tmp_path, old, new, key, bad):
    expect_error(tmp_path, edit(EASY, old, new), key, "finite", f"got {bad}")


def test_error_non_finite_inline_array(tmp_path):
    text = edit(CUSTOM_INLINE, "[0.2, 0.4, 0.8]", "[0.2, nan, 0.8]")
    expect_error(tmp_path, text, "model.initial_error", "element 1", "finite", "nan")


def test_error_integer_too_large_for_a_float(tmp_path):
    text = edit(EASY, "b = 1.2 ", "b = " + "9" * 400 + " ")
    expect_error(tmp_path, text, "model.b", "finite", "999999")


def test_error_string_where_number_expected(tmp_path):
    text = edit(EASY, "max = 0.35 ", 'max = "0.35" ')
    expect_error(tmp_path, text, "controls.learning_rate.max", "must be a number", "'0.35'")


def test_error_boolean_where_number_expected(tmp_path):
    text = edit(EASY, "a = 2.5 ", "a = true ")
    expect_error(tmp_path, text, "model.a", "must be a number", "true")


def test_error_number_where_boolean_expected(tmp_path):
    text = edit(EASY, "finite_size = false", "finite_size = 0")
    expect_error(tmp_path, text, "model.finite_size", "true or false", "got 0")


def test_error_number_where_table_expected(tmp_path):
    start = EASY.index("[training]")
    end = EASY.index("\n[", start + 1)
    text = "training = 5\n" + EASY[:start] + EASY[end + 1 :]
    expect_error(tmp_path, text, "training", "must be a table", "5")


def test_error_bad_initial_loss_word(tmp_path):
    text = edit(EASY, "initial_loss = 1.0 ", 'initial_loss = "rough" ')
    expect_error(tmp_path, text, "model.initial_loss", "raw", "'rough'")


def test_error_bad_model_kind(tmp_path):
    text = edit(EASY, 'kind = "powerlaw" ', 'kind = "gaussian" ')
    expect_error(tmp_path, text, "model.kind", "powerlaw", "'gaussian'")


@pytest.mark.parametrize("bad", ["2", "0", "'1'"])
def test_error_bad_schema_version(tmp_path, bad):
    text = edit(EASY, "schema_version = 1 ", f"schema_version = {bad} ")
    expect_error(tmp_path, text, "schema_version", bad)


def test_error_newer_schema_version_is_reported_before_its_new_keys(tmp_path):
    text = edit(EASY, "schema_version = 1 ", "schema_version = 2\nobjective = 'wall-clock' ")
    expect_error(tmp_path, text, "schema_version", "unsupported", "2")


def test_error_toml_syntax_has_line_number(tmp_path):
    text = edit(EASY, "b = 1.2 ", "b = = 1.2 ")
    line = text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith("b = =")))
    expect_error(tmp_path, text, None, "invalid TOML", f"line {line + 1}")


def test_error_duplicate_key_is_a_syntax_error(tmp_path):
    text = edit(EASY, "b = 1.2 ", "b = 1.2\nb = 1.3 ")
    expect_error(tmp_path, text, None, "invalid TOML", "line")


def test_error_integer_with_too_many_digits(tmp_path):
    text = edit(EASY, "n_modes = 1000 ", "n_modes = 1" + "0" * 5000 + " ")
    expect_error(tmp_path, text, "model.n_modes", "invalid TOML", "digits")  # tomllib does not say where


def test_error_missing_spec_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match=r"nope\.toml: cannot read the spec file"):
        load_problem(path)


def test_error_spec_not_utf8(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(EASY.encode().replace(b'"easy-phase"', b'"\xe9asy"'))
    with pytest.raises(SpecError, match=r"latin\.toml: the spec is not valid UTF-8 \(byte 0xe9"):
        load_problem(path)


def test_error_missing_custom_spectrum_file(tmp_path):
    err = expect_error(tmp_path, custom_file_spec("gone.csv"), "model.file", "'gone.csv'", "not found")
    assert str(tmp_path / "gone.csv") in str(err)


def test_error_custom_file_bad_extension(tmp_path):
    expect_error(tmp_path, custom_file_spec("spectrum.txt"), "model.file", ".csv", "'spectrum.txt'")


def test_error_custom_file_and_inline_arrays(tmp_path):
    text = edit(CUSTOM_INLINE, "residual = 0.01", 'residual = 0.01\nfile = "s.csv"')
    expect_error(tmp_path, text, "model.eigenvalues", "either `file`", "not both")


def test_error_custom_model_without_arrays(tmp_path):
    text = edit(CUSTOM_INLINE, "eigenvalues = [1.0, 0.5, 0.25]\ninitial_error = [0.2, 0.4, 0.8]\n", "")
    expect_error(tmp_path, text, "model", "custom model needs", "initial_error")


def test_error_custom_inline_missing_one_array(tmp_path):
    text = edit(CUSTOM_INLINE, "initial_error = [0.2, 0.4, 0.8]\n", "")
    expect_error(tmp_path, text, "model.initial_error", "missing required key", "'initial_error'")


def test_error_mismatched_inline_array_lengths(tmp_path):
    text = edit(CUSTOM_INLINE, "[0.2, 0.4, 0.8]", "[0.2, 0.4]")
    expect_error(tmp_path, text, "model.initial_error", "length of `eigenvalues` (3)", "got 2")


def test_error_mismatched_npz_array_lengths(tmp_path):
    np.savez(tmp_path / "s.npz", eigenvalues=np.ones(3), initial_error=np.ones(2))
    expect_error(tmp_path, custom_file_spec("s.npz"), "model.file", "'s.npz'", "2 values", "3")


def test_error_csv_row_with_missing_value(tmp_path):
    (tmp_path / "s.csv").write_text("eigenvalues,initial_error\n1.0,0.5\n0.5\n")
    expect_error(tmp_path, custom_file_spec("s.csv"), "model.file", "'s.csv'", "line 3", "'0.5'")


def test_error_csv_wrong_columns(tmp_path):
    (tmp_path / "s.csv").write_text("lambda,c0\n1.0,0.5\n")
    expect_error(tmp_path, custom_file_spec("s.csv"), "model.file", "'s.csv'", "header", "lambda,c0")


def test_error_csv_non_number(tmp_path):
    (tmp_path / "s.csv").write_text("eigenvalues,initial_error\n1.0,0.5\n0.5,abc\n")
    expect_error(tmp_path, custom_file_spec("s.csv"), "model.file", "line 3", "initial_error", "'abc'")


def test_error_csv_non_finite(tmp_path):
    (tmp_path / "s.csv").write_text("eigenvalues,initial_error\ninf,0.5\n")
    expect_error(tmp_path, custom_file_spec("s.csv"), "model.file", "line 2", "finite", "'inf'")


def test_error_csv_non_positive_eigenvalue(tmp_path):
    (tmp_path / "s.csv").write_text("eigenvalues,initial_error\n1.0,0.5\n0.0,0.5\n")
    expect_error(tmp_path, custom_file_spec("s.csv"), "model.file", "'s.csv'", "positive", "index 1")


def test_error_npz_wrong_arrays(tmp_path):
    np.savez(tmp_path / "s.npz", lam=np.ones(3), c0=np.ones(3))
    expect_error(tmp_path, custom_file_spec("s.npz"), "model.file", "'s.npz'", "'c0', 'lam'")


def test_error_npz_not_an_archive(tmp_path):
    (tmp_path / "s.npz").write_text("not a zip")
    expect_error(tmp_path, custom_file_spec("s.npz"), "model.file", "'s.npz'", "cannot read")


def test_error_bad_grid_name(tmp_path):
    text = edit(EASY, 'grid = "geometric-both" ', 'grid = "logarithmic" ')
    expect_error(tmp_path, text, "controls.learning_rate.grid", "uniform", "'logarithmic'")


def test_error_bad_parameterisation(tmp_path):
    text = edit(EASY, 'parameterisation = "linear" ', 'parameterisation = "cubic" ')
    expect_error(tmp_path, text, "controls.learning_rate.parameterisation", "'cubic'")


def test_error_zero_blocks(tmp_path):
    text = edit(EASY, "blocks = 100 ", "blocks = 0 ")
    expect_error(tmp_path, text, "controls.learning_rate.blocks", "positive integer", "got 0")


def test_error_more_blocks_than_steps(tmp_path):
    text = edit(EASY, "horizon = 10000 ", "horizon = 50 ")
    expect_error(tmp_path, text, "controls.learning_rate.blocks", "horizon (50)", "(100)")


def test_error_custom_grid_without_edges(tmp_path):
    text = edit(EASY, 'grid = "geometric-both" ', 'grid = "custom" ')
    expect_error(tmp_path, text, "controls.learning_rate.edges", "required", 'grid = "custom"')


def test_error_edges_without_custom_grid(tmp_path):
    text = edit(EASY, "blocks = 100 ", "edges = [0, 10000] ")
    expect_error(tmp_path, text, "controls.learning_rate.edges", "only allowed", "'geometric-both'")


def test_error_edges_not_ending_at_horizon(tmp_path):
    text = edit(EASY, "blocks = 100 ", "edges = [0, 10, 100] ")
    text = edit(text, 'grid = "geometric-both" ', 'grid = "custom" ')
    expect_error(tmp_path, text, "controls.learning_rate.edges", "horizon (10000)", "got 100")


def test_error_edges_not_increasing(tmp_path):
    text = edit(EASY, "blocks = 100 ", "edges = [0, 500, 400, 10000] ")
    text = edit(text, 'grid = "geometric-both" ', 'grid = "custom" ')
    expect_error(tmp_path, text, "controls.learning_rate.edges", "strictly increasing", "500, 400")


def test_error_blocks_disagree_with_custom_edges(tmp_path):
    text = edit(EASY, 'grid = "geometric-both" ', 'grid = "custom"\nedges = [0, 10, 10000]')
    expect_error(tmp_path, text, "controls.learning_rate.blocks", "= 100", "2 blocks")


@pytest.mark.parametrize("bad", ["0.0", "-0.1"])
def test_error_max_not_above_min(tmp_path, bad):
    text = edit(EASY, "max = 0.35 ", f"max = {bad} ")
    expect_error(tmp_path, text, "controls.learning_rate.max", "greater than `min`", f"got {bad}")


def test_error_negative_min(tmp_path):
    text = edit(EASY, "min = 0.0 ", "min = -0.1 ")
    expect_error(tmp_path, text, "controls.learning_rate.min", ">= 0", "-0.1")


def test_error_momentum_control_max_not_below_one(tmp_path):
    text = EASY + "\n[controls.momentum]\nmin = 0.0\nmax = 1.0\n"
    expect_error(tmp_path, text, "controls.momentum.max", "< 1", "1.0")


def test_error_fixed_momentum_out_of_range(tmp_path):
    text = edit(EASY, "momentum = 0.0 ", "momentum = 1.0 ")
    expect_error(tmp_path, text, "training.momentum", "[0, 1)", "1.0")


def test_error_batch_size_below_one(tmp_path):
    text = edit(EASY, "batch_size = 1 ", "batch_size = 0.5 ")
    expect_error(tmp_path, text, "training.batch_size", ">= 1", "0.5")


def test_error_sample_budget_without_batch_size_control(tmp_path):
    text = edit(EASY, "momentum = 0.0 ", "sample_budget = 1e6 ")
    expect_error(tmp_path, text, "training.sample_budget", "controls.batch_size", "1000000.0")


def test_error_empty_name(tmp_path):
    text = edit(EASY, 'name = "easy-phase" ', 'name = "" ')
    expect_error(tmp_path, text, "name", "non-empty", "''")


def test_error_exponent_that_underflows_the_spectrum(tmp_path):
    text = edit(EASY, "b = 1.2 ", "b = 400.0 ")
    expect_error(tmp_path, text, "model", "b = 400.0", "eigenvalues")


def test_error_noise_too_large_to_square(tmp_path):
    text = edit(EASY, "noise_std = 0.5 ", "noise_std = 1e200 ")
    expect_error(tmp_path, text, "model", "noise_std = 1e+200", "too large")


def test_parse_problem_without_path_names_the_string():
    with pytest.raises(SpecError, match=r"^<string>: model\.a: .*got -1"):
        parse_problem(edit(EASY, "a = 2.5 ", "a = -1 "))


# --- fuzz


NASTY = [
    "0", "-1", "1", "2.5", "1e4", "1e999", "-1e999", "nan", "inf", "-inf", "true", "false",
    '"x"', '""', '"raw"', '"custom"', "[]", "[1, 2]", "[0, 10000]", "{}", "{ a = 1 }",
    "1979-05-27", "99999999999999999999999", "1" + "0" * 400, "0.999", "1e-300", "=",
    '"custom-spectrum.csv"', '"gone.npz"', "[nan]",
]  # fmt: skip
FUZZ_EXAMPLES = 300


@st.composite
def mutated_spec(draw):
    text = draw(st.sampled_from([shipped_text(name) for name in SHIPPED]))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "key", "delete", "duplicate", "insert", "junk"]))
        line = lines[i]
        if action == "value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[i] = f"{key}= {draw(st.sampled_from(NASTY))}"
        elif action == "key" and "=" in line:
            lines[i] = (
                draw(st.sampled_from(["kind", "a", "zz", "file", "edges", "grid"]))
                + " ="
                + line.split("=", 1)[1]
            )
        elif action == "delete":
            del lines[i]
            if not lines:
                lines = [""]
        elif action == "duplicate":
            lines.insert(i, line)
        elif action == "insert":
            lines.insert(
                i,
                draw(
                    st.sampled_from(
                        [
                            "[controls.batch_size]",
                            "[controls.momentum]",
                            "[model]",
                            "min = 1",
                            "max = 0.5",
                            "edges = [0, 1, 10000]",
                            'grid = "custom"',
                            "sample_budget = 1e5",
                            "eigenvalues = [1.0]",
                            "initial_error = [1.0]",
                        ]
                    )
                ),
            )
        else:
            lines[i] = draw(st.text(max_size=20))
    return "\n".join(lines)


@settings(max_examples=examples(FUZZ_EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_spec())
def test_fuzz_mutated_specs_raise_only_spec_errors(text):
    try:
        problem = parse_problem(text, path="fuzz.toml", base_dir=PROBLEMS)
    except SpecError as err:
        assert str(err).startswith("fuzz.toml")
        return
    assert isinstance(problem, Problem)
    assert math.isfinite(problem.model.initial_loss)


@settings(max_examples=examples(FUZZ_EXAMPLES // 3), deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_arbitrary_text_raises_only_spec_errors(text):
    with pytest.raises(SpecError):
        parse_problem(text, path="fuzz.toml")
