"""The Ray backend on a real local cluster of 2 worker processes: identical results to the local
backend, a worker killed mid-task retried without losing or duplicating a result, progress,
and one-line errors for a missing extra or an unreachable cluster."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schedopt.backends import BackendError, LocalBackend, get_backend
from schedopt.batch import design_many
from schedopt.cli import app
from schedopt.problem import ControlSpec, Model, Problem, Training

ray = pytest.importorskip("ray")

#: Seconds to wait for a worker to start running a solve before the kill test gives up.
KILL_WAIT = 120.0


def problem(a: float, noise: float, horizon: int = 200) -> Problem:
    model = Model.powerlaw(a, 1.5, 24, noise_std=noise)
    lr = ControlSpec(name="learning_rate", min=0.0, max=0.5, blocks=20, grid="uniform")
    return Problem(
        name="ray-test",
        model=model,
        training=Training(horizon=horizon, batch_size=4),
        controls={"learning_rate": lr},
    )


PROBLEMS = [problem(a, n) for a in (1.4, 2.2) for n in (0.1, 0.4)]  # two chunks of two: one per worker


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 worker CPUs, started by the backend itself."""
    backend = get_backend("ray", num_cpus=2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def local_results():
    return design_many(PROBLEMS, backend=LocalBackend(), max_batch=2)


def assert_identical(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (
            x.problem.model.a == y.problem.model.a
            and x.problem.model.noise_variance == y.problem.model.noise_variance
        )
        assert (x.status, x.iterations, x.final_loss) == (y.status, y.iterations, y.final_loss)
        for name in x.parameters:
            assert x.parameters[name].tolist() == y.parameters[name].tolist()


def test_ray_results_are_identical_to_local_and_progress_counts_designs(cluster, local_results):
    seen = []
    results = design_many(PROBLEMS, backend=cluster, max_batch=2, progress=lambda d, t: seen.append((d, t)))
    assert_identical(results, local_results)
    assert seen == [(2, 4), (4, 4)]  # designs done / designs, one report per chunk


def _solving_workers() -> list[int]:
    """PIDs of Ray worker processes running a solve (Ray titles a busy worker ``ray::<task>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ray::_solve_task"):
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker through /proc")
def test_a_worker_killed_mid_task_is_retried_without_loss_or_duplication(cluster, local_results):
    box: dict[str, object] = {}

    def run():
        try:
            box["results"] = design_many(PROBLEMS, backend=cluster, max_batch=2)
        except Exception as exc:  # reported by the assertion below
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + KILL_WAIT
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        busy = _solving_workers()
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        else:
            time.sleep(0.02)
    thread.join()
    assert killed is not None, "no worker was seen running a solve"
    assert "error" not in box, box.get("error")
    assert_identical(box["results"], local_results)  # every design once, in order, equal to local


def test_cli_sweep_on_ray_writes_the_report_of_the_local_backend(cluster, tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(
        'schema_version = 1\nname = "tiny"\n[model]\nkind = "powerlaw"\na = 1.5\nb = 1.5\nn_modes = 24\n'
        "noise_std = 0.3\n[training]\nhorizon = 200\nbatch_size = 4\nmomentum = 0.0\n"
        '[controls.learning_rate]\nmin = 0.0\nmax = 0.5\nblocks = 20\ngrid = "uniform"\n',
        encoding="utf-8",
    )
    reports = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        args = [
            "sweep",
            str(spec),
            "--vary",
            "model.a=1.4:2.2:3",
            "--vary",
            "controls.learning_rate.blocks=20:300:2",
        ]
        result = CliRunner().invoke(
            app, [*args, "--backend", backend, "--max-batch", "2", "--out", str(out), "--json"]
        )
        assert result.exit_code == 1, result.output  # the points with 300 blocks > horizon 200: invalid
        report = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
        assert report.pop("backend") == backend
        report.pop("files")
        reports[backend] = report
    assert reports["local"] == reports["ray"]
    rows = reports["ray"]["rows"]
    assert [r["status"] for r in rows] == ["converged", "invalid"] * 3
    assert all("blocks" in r["error"] for r in rows[1::2])


def _lockstep_plan(_task) -> tuple[int, int]:
    from schedopt.solvers import _lockstep

    return _lockstep.usable_cores(), _lockstep.default_workers()


def test_a_ray_task_plans_its_batch_for_the_one_cpu_ray_reserved(cluster):
    """A worker's process sees every core of the node; its batch's threads are planned for the task's CPU."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    try:
        plans = cluster.map(_lockstep_plan, [0, 1])
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert plans == [(1, 2), (1, 2)]  # one core, two threads of vectorised calls (default_workers)


def test_starting_ray_after_jax_ran_gives_no_fork_warning():
    """Ray starts its processes by fork and exec; JAX's at-fork warning ("will likely lead to a
    deadlock") is not for them and must not reach the user (in a process where JAX already runs)."""
    code = (
        "import jax.numpy as jnp\n"
        "jnp.ones(3).sum().block_until_ready()\n"
        "from schedopt.backends import get_backend\n"
        "get_backend('ray', num_cpus=1).close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "os.fork() was called" not in done.stderr


def test_unreachable_address_is_one_error_naming_it():
    with pytest.raises(BackendError, match=re.escape("no Ray cluster reachable at --address '127.0.0.1:9'")):
        get_backend("ray", "127.0.0.1:9")


def test_missing_ray_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the extra
    with pytest.raises(BackendError, match=r'pip install "schedopt\[ray\]"'):
        get_backend("ray")


def test_address_without_ray_backend_is_an_error():
    with pytest.raises(BackendError, match="--address"):
        get_backend("local", "127.0.0.1:6379")
