"""The persistent compilation cache: where it lives, that it is hit, and that it never changes a result.

Bad caches (corrupt entries, a directory that cannot be created, a full disk) give one
warning and the computation runs uncached. The end-to-end tests run fresh processes
(the cache matters across processes), each with an explicit cache directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from helpers import TINY_SPEC

from schedopt import _jax
from schedopt._jax import CacheWarning, FileCache, cache_dir

ROOT = Path(__file__).resolve().parents[1]
SCHEDOPT = str(Path(sys.executable).with_name("schedopt"))  # the console script of this environment

#: A fresh process: solve the tiny problem, print its schedule (exact floats) and the cache's counts.
SOLVE = """
import json, sys
import schedopt
from schedopt._jax import active_cache
problem = schedopt.parse_problem(sys.argv[1])
solution = schedopt.solve(problem)
cache = active_cache()
print(json.dumps({
    "learning_rate": solution.per_step("learning_rate").tolist(),
    "final_loss": solution.final_loss,
    "cache": None if cache is None else {"hits": cache.hits, "misses": cache.misses, "writes": cache.writes},
}))
"""


def _env(**changes: str | None) -> dict[str, str]:
    """The test's environment without its cache settings; a library process opts in (SCHEDOPT_CACHE=1)."""
    drop = ("SCHEDOPT_NO_CACHE", "SCHEDOPT_CACHE_DIR", "SCHEDOPT_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["SCHEDOPT_CACHE"] = "1"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SOLVE, TINY_SPEC],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _finish(proc: subprocess.Popen) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out), err


def _solve(env: dict[str, str]) -> tuple[dict, str]:
    return _finish(_start(env))


def _entries(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.endswith("-cache"))


def _cache_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CacheWarning" in line]


# --- where the cache lives


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    for name in ("SCHEDOPT_NO_CACHE", "SCHEDOPT_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "schedopt" / "jax"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "schedopt" / "jax"
    monkeypatch.setenv("SCHEDOPT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("SCHEDOPT_NO_CACHE", "1")
    assert cache_dir() is None


# --- the store


def test_entries_round_trip_and_are_written_whole(tmp_path):
    cache = FileCache(tmp_path)
    assert cache.get("jit_f-abc") is None
    cache.put("jit_f-abc", b"\x00compiled program\xff")
    assert cache.get("jit_f-abc") == b"\x00compiled program\xff"
    assert [p.name for p in tmp_path.iterdir()] == ["jit_f-abc-cache"]  # no temporary file left
    assert (cache.hits, cache.misses, cache.writes) == (1, 1, 1)


def test_corrupt_entries_are_removed_with_one_warning(tmp_path):
    cache = FileCache(tmp_path)
    cache.put("a", b"program a")
    cache.put("b", b"program b")
    whole = (tmp_path / "a-cache").read_bytes()
    (tmp_path / "a-cache").write_bytes(whole[:-5])  # truncated, as a crash mid-write would leave it
    (tmp_path / "b-cache").write_bytes(b"garbage")
    with pytest.warns(CacheWarning, match="corrupt entry") as record:
        assert cache.get("a") is None
        assert cache.get("b") is None
    assert len(record) == 1
    assert _entries(tmp_path) == []
    cache.put("a", b"program a")  # recompiled and written again
    assert cache.get("a") == b"program a"


def test_a_directory_that_cannot_be_created_turns_the_cache_off(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.warns(CacheWarning, match="cannot create it") as record:
        cache = FileCache(blocker / "cache")
    assert len(record) == 1 and cache.disabled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.put("a", b"program")
        assert cache.get("a") is None


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_turns_the_cache_off_with_one_warning(tmp_path, monkeypatch):
    def write_to_full_disk(path, data):
        with open(path, "wb") as fh:  # the temporary file exists, as on a real disk
            fh.write(b"")
        with open("/dev/full", "wb") as fh:
            fh.write(data)

    cache = FileCache(tmp_path)
    monkeypatch.setattr(_jax, "_write_bytes", write_to_full_disk)
    with pytest.warns(CacheWarning, match="No space left on device") as record:
        cache.put("a", b"program a")
        cache.put("b", b"program b")
    assert len(record) == 1 and cache.disabled
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed, no entry written


def test_enable_and_disable_in_process(tmp_path):
    """Programs compiled while the cache is on are written to it; JAX keeps its store for other paths."""
    import jax
    import jax.numpy as jnp
    from jax._src import compilation_cache

    try:
        cache = _jax.enable_cache(tmp_path / "cache")
        assert cache is not None and _jax.active_cache() is cache
        assert float(jax.jit(lambda x: 3.0 * x + 1.25)(jnp.float64(2.0))) == 7.25
        assert cache.writes == len(_entries(tmp_path / "cache")) >= 1
        store, where = compilation_cache.get_file_cache(str(tmp_path / "other"))
        assert store is not cache and where == str(tmp_path / "other")
    finally:
        _jax.disable_cache()
        jax.config.update("jax_enable_compilation_cache", True)  # JAX's default (no directory: no cache)
    assert _jax.active_cache() is None and jax.config.jax_compilation_cache_dir is None


def test_cached_jit_runs_stored_programs_without_tracing_them(tmp_path):
    """A program is traced once; a new function object (as in a new process) runs the stored
    executable untraced, with the same numbers bit for bit; traced arguments (vmap, grad) and a
    stored program that cannot be loaded fall back to ``jax.jit``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    traces = []

    def body(x, scale, power=2):
        traces.append(power)  # runs while JAX traces, never when a compiled program runs
        return jnp.sum(scale * jnp.sin(x) ** power), jnp.cumsum(x) * scale

    def fresh():
        return _jax.cached_jit(body, static_argnames=("power",))

    x = np.linspace(0.0, 3.0, 7)
    with jax.enable_x64(True):
        expected = jax.device_get(jax.jit(body, static_argnames=("power",))(x, 0.5, power=3))
        uncached = fresh()  # no cache: jax.jit itself
        assert np.array_equal(uncached(x, 0.5, power=3)[1], expected[1])
        try:
            cache = _jax.enable_cache(tmp_path / "cache")
            jax.clear_caches()
            del traces[:]
            out = fresh()(x, 0.5, power=3)
            assert traces and cache.writes >= 1
            assert float(out[0]) == float(expected[0]) and np.array_equal(out[1], expected[1])
            programs = [p for p in _entries(tmp_path / "cache") if p.name.startswith(_jax._PREFIX)]
            assert len(programs) == 1
            jax.clear_caches()  # as in a new process: nothing in memory
            del traces[:]
            hits = cache.hits
            again = fresh()
            out = again(x, 0.5, power=3)
            assert traces == [] and cache.hits == hits + 1
            assert float(out[0]) == float(expected[0]) and np.array_equal(out[1], expected[1])
            out = again(x, scale=0.5, power=3)  # the same program, however the arguments are passed
            assert traces == [] and cache.hits == hits + 1 and float(out[0]) == float(expected[0])
            # under vmap and grad the arguments are traced: jax.jit's path, same values
            rows = jax.vmap(lambda s: again(x, s, power=3)[0])(jnp.array([0.5, 1.0]))
            assert float(rows[0]) == float(expected[0])
            grad = jax.grad(lambda s: again(x, s, power=3)[0])(0.5)
            assert float(grad) == float(expected[0]) / 0.5
            # a stored program that cannot be loaded: compiled again, same numbers
            cache.put(programs[0].name[: -len("-cache")], b"not a program")
            jax.clear_caches()
            out = fresh()(x, 0.5, power=3)
            assert float(out[0]) == float(expected[0]) and np.array_equal(out[1], expected[1])
        finally:
            _jax.disable_cache()
            jax.config.update("jax_enable_compilation_cache", True)


def test_a_stored_program_that_loads_but_fails_to_run_is_removed_with_a_warning(tmp_path, monkeypatch):
    """XLA's CPU runtime once loaded a stored program whose first run failed ("NOT_FOUND: Function
    compare_bitcast_fusion not found"), after the point where a load error falls back: every later
    `design` crashed. A stored program's first run is now checked: on failure one warning, the
    entry removed, jax.jit's result (the same numbers), and later processes compile it without storing it (it
    was stored again and failed again in every other `design` of a fitted LSTM task's spec: "Function
    bitcast_pad_fusion not found")."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import serialize_executable

    def body(x, scale):
        return jnp.sum(scale * jnp.sin(x) ** 2)

    x = np.linspace(0.0, 3.0, 7)
    with jax.enable_x64(True):
        expected = float(jax.jit(body)(x, 0.5))
        try:
            cache = _jax.enable_cache(tmp_path / "cache")
            jax.clear_caches()
            assert float(_jax.cached_jit(body)(x, 0.5)) == expected
            stored = [p for p in _entries(tmp_path / "cache") if p.name.startswith(_jax._PREFIX)]
            assert len(stored) == 1

            class Broken:
                def __call__(self, *args, **kwargs):
                    raise RuntimeError("NOT_FOUND: Function compare_bitcast_fusion not found (type id: 1)")

            monkeypatch.setattr(serialize_executable, "deserialize_and_load", lambda *a, **k: Broken())
            jax.clear_caches()
            with pytest.warns(CacheWarning, match="failed to run"):
                assert float(_jax.cached_jit(body)(x, 0.5)) == expected
            assert not stored[0].exists()  # removed, and marked: the next process compiles it, unstored
            assert not cache.storable(stored[0].name.removesuffix(_jax._SUFFIX))
            monkeypatch.undo()
            jax.clear_caches()
            writes = cache.writes
            assert float(_jax.cached_jit(body)(x, 0.5)) == expected
            assert (
                not stored[0].exists() and cache.writes == writes
            )  # not stored again: no failure every other run
        finally:
            _jax.disable_cache()
            jax.config.update("jax_enable_compilation_cache", True)


def test_a_program_stored_whole_is_compiled_by_xla_not_loaded_from_jaxs_entry(tmp_path):
    """An executable JAX loads from its own entry, serialised again, lacked kernels and failed to run in the
    next process (six programs of a fitted design after an edit of schedopt's sources). cached_jit compiles
    the programs it stores without reading JAX's entries, and writes none of its own for them."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    def body(x, scale):
        return jnp.sum(scale * jnp.cos(x) ** 3)

    x = np.linspace(0.0, 2.0, 9)
    with jax.enable_x64(True):
        try:
            cache = _jax.enable_cache(tmp_path / "cache")
            jax.clear_caches()
            expected = float(jax.jit(body)(x, 0.5))  # JAX's own entry of this program
            jax.clear_caches()
            hits = cache.hits
            assert float(jax.jit(body)(x, 0.5)) == expected and cache.hits == hits + 1  # JAX reads it back
            jax.clear_caches()
            files = set(_entries(tmp_path / "cache"))
            hits = cache.hits
            assert float(_jax.cached_jit(body)(x, 0.5)) == expected
            assert cache.hits == hits  # compiled by XLA, not loaded from JAX's entry
            added = set(_entries(tmp_path / "cache")) - files
            assert [p.name.startswith(_jax._PREFIX) for p in added] == [True]  # ours only
        finally:
            _jax.disable_cache()
            jax.config.update("jax_enable_compilation_cache", True)


# --- end to end, in fresh processes


@pytest.fixture(scope="module")
def cold_warm_uncached(tmp_path_factory):
    """The tiny problem solved in fresh processes: cold cache, warm cache, and no cache."""
    path = tmp_path_factory.mktemp("jax-cache")
    cold, err_cold = _solve(_env(SCHEDOPT_CACHE_DIR=str(path)))
    warm, err_warm = _solve(_env(SCHEDOPT_CACHE_DIR=str(path)))
    uncached, err_none = _solve(_env(SCHEDOPT_CACHE_DIR=str(path), SCHEDOPT_NO_CACHE="1"))
    return path, (cold, err_cold), (warm, err_warm), (uncached, err_none)


def test_the_cache_is_hit_and_results_are_bitwise_identical(cold_warm_uncached):
    path, (cold, err_cold), (warm, err_warm), (uncached, _) = cold_warm_uncached
    assert cold["cache"]["writes"] > 0 and cold["cache"]["hits"] == 0
    # a program of schedopt's own (cached_jit) is stored once, whole (its executable, compiled by XLA, not
    # under JAX's key too); a warm process reads every entry once and neither traces nor lowers those
    programs = [p for p in _entries(path) if p.name.startswith(_jax._PREFIX)]
    assert programs
    assert warm["cache"]["hits"] == cold["cache"]["writes"] and warm["cache"]["misses"] == 0
    assert warm["cache"]["writes"] == 0
    assert uncached["cache"] is None
    assert len(_entries(path)) == cold["cache"]["writes"]
    # exact float equality: the cache never changes a number
    assert warm["learning_rate"] == cold["learning_rate"] == uncached["learning_rate"]
    assert warm["final_loss"] == cold["final_loss"] == uncached["final_loss"]
    assert _cache_warnings(err_cold + err_warm) == []


def test_a_corrupt_cache_warns_once_and_gives_the_same_result(cold_warm_uncached, tmp_path):
    path, (cold, _), _, _ = cold_warm_uncached
    bad = tmp_path / "cache"
    bad.mkdir()
    for entry in _entries(path):
        (bad / entry.name).write_bytes(entry.read_bytes()[: len(entry.read_bytes()) // 2])
    result, err = _solve(_env(SCHEDOPT_CACHE_DIR=str(bad)))
    assert len(_cache_warnings(err)) == 1, err
    assert result["learning_rate"] == cold["learning_rate"]
    assert result["cache"]["hits"] == 0 and result["cache"]["writes"] == cold["cache"]["writes"]


def test_cli_runs_uncached_with_one_warning_when_the_cache_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    out = subprocess.run(
        [SCHEDOPT, "design", str(spec), "--no-baselines", "--json", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(SCHEDOPT_CACHE_DIR=str(blocker / "cache"), SCHEDOPT_CACHE=None),  # the CLI turns it on
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    warned = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "cannot create it" in warned[0], out.stderr
    assert json.loads(out.stdout)["status"] == "converged"


def test_cli_no_cache_flag_writes_no_cache(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY_SPEC)
    cache = tmp_path / "cache"
    out = subprocess.run(
        [SCHEDOPT, "--no-cache", "simulate", str(spec), "-s", "cosine:0.3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(SCHEDOPT_CACHE_DIR=str(cache), SCHEDOPT_CACHE=None),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert not cache.exists()


def test_concurrent_cold_processes_share_one_cache(cold_warm_uncached, tmp_path):
    _, (cold, _), _, _ = cold_warm_uncached
    env = _env(SCHEDOPT_CACHE_DIR=str(tmp_path / "cache"))
    procs = [_start(env) for _ in range(2)]
    results = [_finish(p) for p in procs]
    for result, err in results:
        assert result["learning_rate"] == cold["learning_rate"]
        assert _cache_warnings(err) == []
    # every entry whole (no temporary file left), and as many as one cold process writes
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith("-cache")] == []
    assert len(_entries(tmp_path / "cache")) == cold["cache"]["writes"]
