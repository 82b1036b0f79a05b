"""Property-based fuzzing of the loaders: mutated spec TOML, schedule JSON and CSV files.

Each example starts from a valid file (the shipped ``problems/*.toml`` and their
custom-spectrum CSV, or a saved schedule) and applies a few random mutations:
deleted, duplicated, swapped or truncated lines, numbers replaced by random
values (nan, inf, huge, negative, strings, arrays, tables), keys renamed or
swapped, garbage inserted, JSON values replaced by other types. The loaders
(:func:`schedopt.spec.parse_problem`, :func:`schedopt.load_problem`,
:func:`schedopt.load_schedule`) must then either succeed or raise a
:class:`~schedopt.errors.SchedoptError` (never another exception), and must not
write anything: the file listing of the folder they read from is the same
before and after.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import PROBLEMS, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schedopt
from schedopt import SchedoptError, Schedule, load_problem, load_schedule, save_schedule
from schedopt.problem import Problem
from schedopt.spec import parse_problem

SPEC_FILES = sorted(PROBLEMS.glob("*.toml"))
SPECTRUM_CSV = "custom-spectrum.csv"
SPEC_TEXTS = {p.name: p.read_text(encoding="utf-8") for p in SPEC_FILES}

#: Examples per property; together the file runs in well under 40 s.
EXAMPLES_SPEC = 250
EXAMPLES_SPECTRUM = 60
EXAMPLES_JSON = 300
EXAMPLES_CSV = 200

FUZZ = settings(
    max_examples=examples(EXAMPLES_SPEC),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- random replacement values

_SPECIAL_TOML = [
    "nan",
    "+nan",
    "-nan",
    "inf",
    "-inf",
    "1e999",
    "-1e999",
    "1e308",
    "-0.0",
    "0",
    "-1",
    "5e-324",
    "10000001",
    "1" + "0" * 30,
    "9" * 400,
    "0x7fffffffffffffff",
    "0b11",
    "1_000",
    "2.5",
    '"text"',
    '""',
    "'raw'",
    '"""multi\nline"""',
    "true",
    "false",
    "[]",
    "[1, 2]",
    '[1, "a"]',
    "[[1], [2]]",
    "{}",
    "{ a = 1 }",
    "1979-05-27",
    "07:32:00",
    "1979-05-27T07:32:00Z",
    '"powerlaw"',
    '"custom"',
    '"uniform"',
    '"custom-spectrum.csv"',
    '"../problems/custom-spectrum.csv"',
    '"missing.npz"',
    '"raw"',
]

toml_values = st.one_of(
    st.sampled_from(_SPECIAL_TOML),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).map(lambda s: s.replace("e+", "e")),
    st.text(max_size=12).map(json.dumps),
)

_SPECIAL_CELLS = [
    "nan",
    "inf",
    "-inf",
    "1e999",
    "-1",
    "0",
    "",
    " ",
    "abc",
    "1,2",
    '"',
    "1e-400",
    "9" * 400,
    "\x00",
]
csv_cells = st.one_of(
    st.sampled_from(_SPECIAL_CELLS),
    st.floats().map(repr),
    st.integers(-(10**3), 10**3).map(str),
    st.text(max_size=8),
)

garbage = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["[", "]", "[[", "=", '"', "'''", "\\", "\n[model]\n", "\n[controls.momentum]\n", "#", "\x00"]
    ),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, -1, 0, 1]),
    st.floats(),  # includes nan and inf, written as NaN / Infinity
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w-]*)(\s*=)", re.MULTILINE)
_KEYS = [
    "schema_version",
    "name",
    "kind",
    "a",
    "b",
    "n_modes",
    "noise_std",
    "initial_loss",
    "finite_size",
    "file",
    "eigenvalues",
    "initial_error",
    "residual",
    "horizon",
    "batch_size",
    "momentum",
    "sample_budget",
    "min",
    "max",
    "blocks",
    "grid",
    "parameterisation",
    "edges",
    "unknown_key",
]


# --- text mutations shared by TOML and CSV


def _index(draw, n: int) -> int:
    return draw(st.integers(0, max(n - 1, 0)))


def mutate_lines(draw, text: str, values: st.SearchStrategy[str]) -> str:
    """Apply one random mutation to ``text`` (line- or character-level)."""
    lines = text.split("\n")
    op = draw(
        st.sampled_from(
            [
                "delete_line",
                "duplicate_line",
                "swap_lines",
                "replace_number",
                "replace_value",
                "rename_key",
                "swap_keys",
                "truncate",
                "insert_garbage",
                "delete_span",
            ]
        )
    )
    if op == "delete_line" and lines:
        del lines[_index(draw, len(lines))]
    elif op == "duplicate_line" and lines:
        i = _index(draw, len(lines))
        lines.insert(_index(draw, len(lines) + 1), lines[i])
    elif op == "swap_lines" and len(lines) > 1:
        i, j = _index(draw, len(lines)), _index(draw, len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "replace_number":
        matches = list(_NUMBER.finditer(text))
        if matches:
            m = matches[_index(draw, len(matches))]
            return text[: m.start()] + draw(values) + text[m.end() :]
    elif op == "replace_value":
        with_eq = [i for i, line in enumerate(lines) if "=" in line]
        if with_eq:
            i = with_eq[_index(draw, len(with_eq))]
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(values)
    elif op == "rename_key":
        matches = list(_KEY_LINE.finditer(text))
        if matches:
            m = matches[_index(draw, len(matches))]
            new = draw(
                st.one_of(st.sampled_from(_KEYS), st.from_regex(r"[A-Za-z_][\w-]{0,8}", fullmatch=True))
            )
            return text[: m.start(2)] + new + text[m.end(2) :]
    elif op == "swap_keys":
        matches = list(_KEY_LINE.finditer(text))
        if len(matches) > 1:
            m1, m2 = sorted(
                (matches[_index(draw, len(matches))], matches[_index(draw, len(matches))]),
                key=lambda m: m.start(),
            )
            if m1.start() != m2.start():
                k1, k2 = m1.group(2), m2.group(2)
                return text[: m1.start(2)] + k2 + text[m1.end(2) : m2.start(2)] + k1 + text[m2.end(2) :]
    elif op == "truncate":
        return text[: _index(draw, len(text) + 1)]
    elif op == "insert_garbage":
        i = _index(draw, len(text) + 1)
        return text[:i] + draw(garbage) + text[i:]
    elif op == "delete_span":
        i = _index(draw, len(text) + 1)
        return text[:i] + text[i + draw(st.integers(1, 20)) :]
    return "\n".join(lines)


@st.composite
def mutated_text(draw, base: str, values: st.SearchStrategy[str], max_mutations: int = 4) -> str:
    text = base
    for _ in range(draw(st.integers(1, max_mutations))):
        text = mutate_lines(draw, text, values)
    return text


# --- JSON mutations


def _paths(obj, prefix=()):
    """Every path (tuple of keys / indices) into a JSON object, the root included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list) and len(obj) <= 12:
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))
    elif isinstance(obj, list):  # long arrays: a few elements are enough
        for i in (0, 1, len(obj) // 2, len(obj) - 1):
            yield from _paths(obj[i], (*prefix, i))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


@st.composite
def mutated_json(draw, base: dict) -> str:
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(obj))
        path = paths[_index(draw, len(paths))]
        op = draw(
            st.sampled_from(
                ["set", "delete", "add_key", "rename_key", "wrap", "empty", "set_all", "set_control"]
            )
        )
        if op == "set_control":  # one value of a control array: the numbers the loader converts
            controls = [
                k
                for k in ("learning_rate", "batch_size", "momentum")
                if isinstance(obj, dict) and isinstance(obj.get(k), list) and obj[k]
            ]
            if controls:
                values = obj[draw(st.sampled_from(controls))]
                values[_index(draw, len(values))] = draw(json_scalars)
            continue
        if not path:
            if op in ("set", "wrap"):
                obj = draw(json_values) if op == "set" else [obj]
            continue
        parent, key = _get(obj, path[:-1]), path[-1]
        if op == "set":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(st.one_of(st.sampled_from(_KEYS), st.text(max_size=6)))] = draw(json_values)
        elif op == "rename_key" and isinstance(parent, dict):
            new = draw(
                st.one_of(st.sampled_from([*_KEYS, "schema_version", "provenance"]), st.text(max_size=6))
            )
            parent[new] = parent.pop(key)
        elif op == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
        elif op == "empty":
            parent[key] = type(parent[key])() if isinstance(parent[key], list | dict | str) else None
        elif op == "set_all" and isinstance(parent[key], list):
            parent[key] = [draw(json_scalars)] * len(parent[key])
    text = json.dumps(obj, allow_nan=True)
    if draw(st.booleans()):  # sometimes also damage the text itself
        text = mutate_lines(
            draw, text, st.sampled_from(["NaN", "Infinity", "-1", "1e999", "null", '"x"', "[", "{"])
        )
    return text


# --- fixtures and checks


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The folder the loaders read from (with the custom spectrum next to the specs)."""
    path = tmp_path_factory.mktemp("fuzz")
    shutil.copy(PROBLEMS / SPECTRUM_CSV, path / SPECTRUM_CSV)
    return path


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder``: size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def check_loader(folder: Path, call) -> object | None:
    """Run a loader; it may return or raise SchedoptError, and must not touch ``folder``."""
    before = listing(folder)
    try:
        result = call()
    except SchedoptError as err:
        assert str(err), "an error without a message"
        result = None
    assert listing(folder) == before, "the loader wrote to the folder"
    return result


def write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


@pytest.fixture(scope="module")
def saved_schedule(tmp_path_factory) -> tuple[str, str]:
    """The JSON and CSV text of a saved schedule with every control and a full provenance."""
    horizon = 12
    t = np.arange(horizon)
    schedule = Schedule(
        learning_rate=0.3 * (1 - t / horizon),
        batch_size=1.0 + t,
        momentum=0.5 + 0.03 * t,
        provenance={
            "schedopt_version": schedopt.__version__,
            "created": "2026-01-01T00:00:00+00:00",
            "problem": "fuzz",
            "spec_sha256": hashlib.sha256((PROBLEMS / "easy-phase.toml").read_bytes()).hexdigest(),
            "spec": (PROBLEMS / "easy-phase.toml").read_text(encoding="utf-8"),  # hashes are checked on load
            "solver": "jax",
            "status": "converged",
            "converged": True,
            "final_loss": 0.0123,
            "fixed": {"batch_size": 1.0, "momentum": 0.0},
            "grids": {"learning_rate": {"blocks": 4, "edges": [0, 3, 6, 9, 12]}},
        },
    )
    folder = tmp_path_factory.mktemp("saved")
    json_text = save_schedule(schedule, folder / "schedule.json").read_text(encoding="utf-8")
    csv_text = save_schedule(schedule, folder / "schedule.csv").read_text(encoding="utf-8")
    # the unmutated files load back exactly
    assert np.array_equal(load_schedule(folder / "schedule.json").momentum, schedule.momentum)
    assert np.array_equal(load_schedule(folder / "schedule.csv").batch_size, schedule.batch_size)
    return json_text, csv_text


def test_unmutated_files_load(folder):
    assert {"easy-phase.toml", "hard-phase.toml", "boundary.toml", "custom-spectrum.toml"} <= set(SPEC_TEXTS)
    for name, text in SPEC_TEXTS.items():
        write(folder / name, text)
        problem = check_loader(folder, lambda name=name: load_problem(folder / name))
        assert isinstance(problem, Problem)
        (folder / name).unlink()


# --- properties


@FUZZ
@given(data=st.data())
def test_mutated_spec_toml(folder, data):
    name = data.draw(st.sampled_from(sorted(SPEC_TEXTS)))
    text = data.draw(mutated_text(SPEC_TEXTS[name], toml_values))
    label = str(folder / name)
    problem = check_loader(folder, lambda: parse_problem(text, path=label))
    if problem is not None:
        assert isinstance(problem, Problem)
    path = folder / name
    write(path, text)
    try:
        check_loader(folder, lambda: load_problem(path))
    finally:
        path.unlink()


@settings(FUZZ, max_examples=examples(EXAMPLES_SPECTRUM))
@given(data=st.data())
def test_mutated_custom_spectrum_csv(folder, data):
    base = (PROBLEMS / SPECTRUM_CSV).read_text(encoding="utf-8")
    csv_text = data.draw(mutated_text(base, csv_cells))
    sub = folder / "spectrum-case"
    sub.mkdir(exist_ok=True)
    write(sub / SPECTRUM_CSV, csv_text)
    spec = sub / "custom-spectrum.toml"
    write(spec, SPEC_TEXTS["custom-spectrum.toml"])
    try:
        check_loader(sub, lambda: load_problem(spec))
    finally:
        shutil.rmtree(sub)


@settings(FUZZ, max_examples=examples(EXAMPLES_JSON))
@given(data=st.data())
def test_mutated_schedule_json(folder, saved_schedule, data):
    text = data.draw(mutated_json(json.loads(saved_schedule[0])))
    suffix = data.draw(st.sampled_from([".json", ".json", ".txt"]))
    path = folder / f"schedule{suffix}"
    write(path, text)
    try:
        schedule = check_loader(folder, lambda: load_schedule(path))
    finally:
        path.unlink()
    if schedule is not None:
        assert isinstance(schedule, Schedule)
        assert np.all(np.isfinite(schedule.learning_rate))


@settings(FUZZ, max_examples=examples(EXAMPLES_CSV))
@given(data=st.data())
def test_mutated_schedule_csv(folder, saved_schedule, data):
    text = data.draw(mutated_text(saved_schedule[1], csv_cells))
    path = folder / "schedule.csv"
    write(path, text)
    try:
        schedule = check_loader(folder, lambda: load_schedule(path))
    finally:
        path.unlink()
    if schedule is not None:
        assert isinstance(schedule, Schedule)
        assert all(math.isfinite(x) for x in schedule.learning_rate)


@settings(FUZZ, max_examples=examples(30))
@given(raw=st.binary(max_size=200), suffix=st.sampled_from([".json", ".csv", ".toml"]))
def test_random_bytes(folder, raw, suffix):
    path = folder / f"random{suffix}"
    path.write_bytes(raw)
    try:
        if suffix == ".toml":
            check_loader(folder, lambda: load_problem(path))
        else:
            check_loader(folder, lambda: load_schedule(path))
    finally:
        path.unlink()


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".json", '{"schema_version": 1, "horizon": 2, "learning_rate": [1' + "0" * 400 + ", 1]}"),
        (".csv", "step,learning_rate\n0," + "1" * 200_000 + "\n"),
    ],
    ids=["json-integer-too-large-for-float", "csv-field-over-the-csv-module-limit"],
)
def test_known_crashers(folder, suffix, text):
    """Inputs found by the fuzzer that once escaped as OverflowError / csv.Error."""
    path = folder / f"crasher{suffix}"
    write(path, text)
    try:
        check_loader(folder, lambda: load_schedule(path))
    finally:
        path.unlink()
