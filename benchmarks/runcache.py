"""Training runs of the real tasks, cached on disk and run two at a time.

A run is a task (``examples/tasks.py``), a per-update learning-rate table and a
seed. Its log (``step,learning_rate,train_loss,val_loss``, schedopt's pilot
format) and a JSON record land in ``benchmarks/results/realtasks/runs/<task>/``
under a label chosen by the caller; a run whose files exist with the same
learning rates is never run again, so a benchmark interrupted at any point
resumes where it stopped, across sessions.

Each worker process runs JAX (or PyTorch, for a task of :mod:`examples.charlstm`) on one thread
(``XLA_FLAGS``, ``torch.set_num_threads``), so two workers
share the 2-core machine without oversubscribing it, and keeps its compiled
update across the runs of one task.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "benchmarks" / "results" / "realtasks" / "runs"
SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

__all__ = ["RUNS", "Job", "lr_digest", "read_run", "run_jobs"]


def lr_digest(lrs: np.ndarray) -> str:
    """A short fingerprint of a learning-rate table (float64 bytes)."""
    return hashlib.sha256(np.ascontiguousarray(lrs, dtype=np.float64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Job:
    """One run: ``task`` name, file ``label``, learning rates ``(T,)``, ``seed``, validation cadence."""

    task: str
    label: str
    lrs: np.ndarray
    seed: int
    eval_every: int | None = None
    meta: dict = field(default_factory=dict)

    @property
    def stem(self) -> Path:
        return RUNS / self.task / f"{self.label}-s{self.seed}"

    @property
    def log(self) -> Path:
        return self.stem.parent / (self.stem.name + ".csv")  # labels hold dots: no with_suffix

    @property
    def record(self) -> Path:
        return self.stem.parent / (self.stem.name + ".json")

    def done(self) -> bool:
        if not (self.log.exists() and self.record.exists()):
            return False
        return json.loads(self.record.read_text()).get("lr_digest") == lr_digest(self.lrs)


def read_run(job: Job) -> dict:
    """A finished run's record plus its validation curve (``val_steps``, ``val_losses``)."""
    record = json.loads(job.record.read_text())
    data = np.genfromtxt(job.log, delimiter=",", names=True)
    keep = np.isfinite(data["val_loss"])
    record["val_steps"] = data["step"][keep].astype(int).tolist()
    record["val_losses"] = data["val_loss"][keep].tolist()
    return record


def train_job(job: Job, log_path: Path | None = None):
    """Train ``job`` (its task's loop and configuration, its learning rates, seed and cadence; PyTorch on one
    thread) and return the loop's result; its log goes to ``log_path`` (``None``: no log). :func:`_work` trains
    every cached run this way, so a run trained here again is the same run."""
    import dataclasses

    import jax.numpy as jnp

    from examples.tasks import TASKS, task_corpus

    task = TASKS[job.task]
    changes = {"steps": int(job.lrs.size), "seed": int(job.seed)}
    if job.eval_every is not None:
        changes["eval_every"] = int(job.eval_every)
    config = dataclasses.replace(task.config, **changes)
    table = jnp.asarray(job.lrs)

    def schedule(count):
        return table[jnp.clip(count, 0, table.shape[0] - 1)]

    schedule.description = {"kind": "table", "label": job.label, **job.meta}
    if task.loop == "charlstm":
        import torch

        from examples.charlstm import train

        torch.set_num_threads(1)  # as XLA_FLAGS does for JAX: two workers, two cores
    else:
        from examples.tinygpt import train
    return train(config, schedule, log_path=log_path, corpus=task_corpus(task.corpus))


def _work(job: Job) -> dict:
    """Run one job in a worker process and write its log and record."""
    from examples.tasks import TASKS

    task = TASKS[job.task]
    job.log.parent.mkdir(parents=True, exist_ok=True)
    start_cpu = time.process_time()
    result = train_job(job, job.log)
    sidecar = job.record  # train() writes its sidecar there (with_suffix on the log's name)
    record = json.loads(sidecar.read_text())
    record["corpus"]["root"] = task.corpus  # no absolute path of this machine in the results
    record.update(
        task=job.task,
        label=job.label,
        seed=job.seed,
        lr_digest=lr_digest(job.lrs),
        cpu_time=time.process_time() - start_cpu,
        final_val_loss=float(result.final_val_loss),
    )
    tmp = sidecar.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, job.record)
    return {"label": job.label, "seed": job.seed, "final_val_loss": record["final_val_loss"]}


def _reuse(job: Job) -> bool:
    """Copy a finished run of the same task, seed and learning rates under ``job``'s label, if there is one.

    A run is a function of its task, seed and learning rates (one thread, fixed seeds), so a
    design arm whose schedule equals an earlier arm's gets that arm's run, not a second
    training; its record says which (``copied_from``).
    """
    digest = lr_digest(job.lrs)
    for record_path in sorted(job.record.parent.glob(f"*-s{job.seed}.json")):
        record = json.loads(record_path.read_text())
        if record.get("lr_digest") != digest or record.get("seed") != job.seed or record_path == job.record:
            continue
        log = record_path.parent / record["log"]
        if not log.exists():
            continue
        job.log.write_bytes(log.read_bytes())
        record.update(label=job.label, log=job.log.name, copied_from=record_path.stem)
        if isinstance(record.get("schedule"), dict):
            record["schedule"] = {**record["schedule"], "label": job.label}
        tmp = job.record.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, job.record)
        print(
            f"{job.task} {job.label} s{job.seed}: the run of {record_path.stem} (same schedule)",
            file=sys.stderr,
        )
        return True
    return False


def _distinct(jobs: list[Job]) -> list[Job]:
    """One job per run file: two stages may list the same run (it was trained twice, concurrently).

    Raises:
        ValueError: two jobs would write one file with different schedules.
    """
    by_file: dict[Path, Job] = {}
    for job in jobs:
        first = by_file.setdefault(job.stem, job)
        if first is not job and lr_digest(first.lrs) != lr_digest(job.lrs):
            raise ValueError(f"{job.stem}: two jobs of different schedules would write this run")
    return list(by_file.values())


def _leaders(jobs: list[Job]) -> tuple[list[Job], dict[int, list[Job]]]:
    """The jobs to train, and by each one's ``id`` the jobs of the same task, seed and learning rates that
    copy its run when it is done (``_reuse``) instead of training it again alongside it."""
    leaders: dict[tuple, Job] = {}
    followers: dict[int, list[Job]] = {}
    for job in jobs:
        leader = leaders.setdefault((job.task, job.seed, lr_digest(job.lrs)), job)
        if leader is not job:
            followers.setdefault(id(leader), []).append(job)
    return list(leaders.values()), followers


def run_jobs(jobs: list[Job], workers: int = 2) -> None:
    """Run every job not yet cached, ``workers`` at a time, in single-threaded worker processes."""
    todo = _distinct([j for j in jobs if not j.done() and not (j.record.parent.is_dir() and _reuse(j))])
    if not todo:
        return
    train, copies = _leaders(todo)
    os.environ.setdefault("XLA_FLAGS", SINGLE_THREAD)
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(_work, j): j for j in train}
        for i, fut in enumerate(cf.as_completed(futures), 1):
            job = futures[fut]
            out = fut.result()
            print(
                f"[{i}/{len(train)}] {job.task} {out['label']} s{out['seed']}: "
                f"{out['final_val_loss']:.4f}  ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            for follower in copies.get(id(job), ()):
                if not _reuse(follower):
                    raise RuntimeError(f"{follower.stem}: the run of {job.stem} was not found to copy")
