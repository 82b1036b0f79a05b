"""Speed as a user feels it (issue 13): fresh-process CPU and wall time of the CLI, cold and warm cache.

Each entry runs one ``schedopt`` command in a fresh process (the environment's console
script, no ``uv run`` wrapper) and records its CPU seconds (user + system, from
``resource.getrusage(RUSAGE_CHILDREN)`` deltas: the machine is shared, so CPU is the number to
compare), wall seconds, peak RSS (``os.wait4``) and the 1-minute load average before and
after. "cold": a fresh, empty compilation-cache directory; "warm": the same command again on
the directory the cold run filled. Next to each design entry, the warm in-process solve
(``schedopt.solve`` twice in this process, the second timed), so that the overhead of a
fresh process is visible.

Commands: ``design --json`` with and without ``--no-baselines``, ``simulate``, ``compare``
(the designed schedule against tuned cosine) and ``transfer`` (the designed schedule to
2T) on the shipped problems at their own horizons and on the authors' default problem
(``benchmarks/authors-default.toml``: a = b = 2, sigma = 0.5, N = 500, batch 5, K = 100
piecewise-constant blocks) at T = 1e2, 1e3, 1e4. Also ``import schedopt`` and the heavy
dependencies one by one (fresh processes, minus a bare interpreter).

Bytecode: this environment sets PYTHONDONTWRITEBYTECODE=1, so every process would compile
all of JAX's sources again (~2x the import time). A user's installation has bytecode
(pip writes it, and Python on first import), so the runs here use bytecode in a temporary
PYTHONPYCACHEPREFIX, warmed once; the import entries are also measured without it.

Usage: uv run python benchmarks/startup.py [--quick] [--large]; --table FILE prints the README tables.
Writes benchmarks/results/startup.json (no absolute paths). ``--large`` runs only ``design``
(with baselines) at N = 1e4, T = 1e5 and 1e6, cold and warm cache (issue 13, item 5: peak memory
and CPU against 2 GB and 60 CPU s), merged into the results file as ``large``.
``--horizons 100,1000`` re-runs the authors' problem at those horizons only (and the imports),
merged into the results file (the other entries kept; each set names its commit).
``--ab TREE`` adds ``before_after``: warm-cache ``design`` of another checkout (TREE: the code
before a change; its own ``.venv``'s console script, or this interpreter running what the console
script runs with ``PYTHONPATH=TREE`` for a ``git worktree`` without one, as this checkout is run
then too; every tree's run gets its own ``PYTHONPATH``) and of this one,
alternated run by run in this process, so that both see the same load.

OpenBLAS threads: the variables that set them are removed from every child's environment, so
each command runs with its own default (the CLI turns OpenBLAS to one thread since issue 13;
the in-process solve is run the same way, as the CLI runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCHEDOPT = Path(sys.executable).with_name("schedopt")
CONSOLE_SCRIPT = "import sys\nfrom schedopt.cli import main\nsys.argv[0] = 'schedopt'\nsys.exit(main())\n"
AUTHORS = "benchmarks/authors-default.toml"
SHIPPED = [
    "problems/easy-phase.toml",
    "problems/hard-phase.toml",
    "problems/boundary.toml",
    "problems/batch-ramp.toml",
    "problems/custom-spectrum.toml",
]
HEAVY = ["numpy", "jax", "scipy.optimize", "matplotlib.pyplot", "casadi", "diffrax", "equinox", "optax"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(argv: list[str], env: dict[str, str], cwd: Path) -> dict:
    """One fresh process: CPU s (children rusage delta), wall s, peak RSS MB, load before/after."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        cpu0, wall0 = _children_cpu(), time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out_file, stderr=err_file)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS)
        wall = time.perf_counter() - wall0
        cpu = _children_cpu() - cpu0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    entry = {
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "exit_code": code,
    }
    entry["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    if code != 0:
        entry["stderr"] = err.decode(errors="replace")[-500:]
    entry["_stdout"] = out.decode(errors="replace")
    return entry


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def _env(pycache: Path | None, cache: Path | None) -> dict[str, str]:
    drop = ("SCHEDOPT_NO_CACHE", "SCHEDOPT_CACHE_DIR", *_BLAS_THREADS)
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    if cache is None:
        env["SCHEDOPT_NO_CACHE"] = "1"
    else:
        env["SCHEDOPT_CACHE_DIR"] = str(cache)
    return env


def imports(pycache: Path, repeats: int) -> dict:
    """CPU s of importing each module in a fresh process, minus a bare interpreter (min of repeats)."""
    out = {}
    for label, bytecode in (("bytecode", pycache), ("no_bytecode", None)):
        env = _env(bytecode, None)

        def cpu(code: str, env=env) -> float:
            return min(run([sys.executable, "-c", code], env, ROOT)["cpu_s"] for _ in range(repeats))

        bare = cpu("pass")
        row = {"python_bare_cpu_s": bare}
        for module in ["schedopt", *HEAVY]:
            row[module] = round(cpu(f"import {module}") - bare, 3)
        row["schedopt --help"] = round(
            cpu("import sys; sys.argv = ['schedopt', '--help']; from schedopt.cli import main; main()")
            - bare,
            3,
        )
        out[label] = row
        print(label, row, flush=True)
    return out


IN_PROCESS = """
import json, sys, time
import schedopt
problem = schedopt.load_problem(sys.argv[1])
if sys.argv[2] != "-":
    problem = problem.with_horizon(int(sys.argv[2]))
times = []
for _ in range(2):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    schedopt.solve(problem, throw=False)
    times.append((time.process_time() - cpu0, time.perf_counter() - wall0))
print(json.dumps({"cold_cpu_s": round(times[0][0], 3), "warm_cpu_s": round(times[1][0], 3),
                  "warm_wall_s": round(times[1][1], 3)}))
"""


def in_process_solve(spec: str, horizon: int | None, env: dict[str, str]) -> dict:
    """Warm in-process solve: the second of two identical ``schedopt.solve`` calls in one process.

    Run in a child (no disk cache), so that this process never loads JAX (children's peak RSS),
    with one OpenBLAS thread, as the CLI runs.
    """
    argv = [sys.executable, "-c", IN_PROCESS, str(ROOT / spec), str(horizon) if horizon else "-"]
    entry = run(argv, {**env, "SCHEDOPT_NO_CACHE": "1", "OPENBLAS_NUM_THREADS": "1"}, ROOT)
    return json.loads(entry["_stdout"]) if entry["exit_code"] == 0 else {"error": entry.get("stderr")}


def command_set(spec: str, horizon: int | None, work: Path, env_base, quick: bool) -> dict:
    """design (± baselines), simulate, compare, transfer: cold then warm cache each."""
    tag = Path(spec).stem + (f"-T{horizon}" if horizon else "")
    over = ["--horizon", str(horizon)] if horizon else []
    spec_arg = str(ROOT / spec)
    entries: dict[str, dict] = {}

    def both(name: str, argv_of) -> dict:
        cache = work / f"cache-{tag}-{name}"
        result = {}
        for phase in ("cold", "warm"):
            out = work / f"out-{tag}-{name}-{phase}"
            entry = run([str(SCHEDOPT), *argv_of(out)], env_base(cache), work)
            stdout = entry.pop("_stdout")
            if name.startswith("design") and entry["exit_code"] == 0:
                report = json.loads(stdout)
                entry["solve_wall_time_s"] = round(report["wall_time"], 3)
                entry["status"] = report["status"]
                entry["final_loss"] = report["final_loss"]
            result[phase] = entry
            print(tag, name, phase, {k: v for k, v in entry.items() if k != "stderr"}, flush=True)
        return result

    entries["design --no-baselines"] = both(
        "design-nb", lambda out: ["design", spec_arg, *over, "--json", "--no-baselines", "--out", str(out)]
    )
    entries["design"] = both("design", lambda out: ["design", spec_arg, *over, "--json", "--out", str(out)])
    schedule = work / f"out-{tag}-design-nb-cold" / "schedule.json"
    entries["simulate"] = both(
        "simulate", lambda out: ["simulate", spec_arg, *over, "-s", "cosine:0.3", "--json"]
    )
    if not quick and schedule.exists():
        # compare has no --horizon: a copy of the spec at the designed horizon
        at_horizon = ROOT / spec  # (a copy would lose the folder a custom spectrum's file is read from)
        if horizon:
            at_horizon = work / f"spec-{tag}.toml"
            text = (ROOT / spec).read_text()
            at_horizon.write_text(re.sub(r"(?m)^horizon\s*=\s*\d+", f"horizon = {horizon}", text))
        entries["compare"] = both(
            "compare",
            lambda out: [
                "compare",
                str(at_horizon),
                str(schedule),
                "-b",
                "cosine",
                "--json",
                "--out",
                str(out),
            ],
        )
        target = 2 * (horizon or json.loads(schedule.read_text())["horizon"])
        entries["transfer"] = both(
            "transfer",
            lambda out: (
                [
                    "transfer",
                    str(schedule),
                    "--spec",
                    spec_arg,
                    "--horizon",
                    str(target),
                    "--json",
                    "--out",
                    str(out),
                ]
            ),
        )
    return entries


def before_after(other: Path, work: Path, env_base, horizons, repeats: int) -> dict:
    """Warm-cache ``design`` (with and without baselines) of ``other``'s CLI and this one's, alternated.

    Each tree gets its own cache directory, filled by one discarded run per command first.
    """
    trees = {"before": other.resolve(), "after": ROOT}
    commits = {label: _git_head(tree) for label, tree in trees.items()}
    out: dict = {
        "commits": commits,
        "repeats": repeats,
        "note": "CPU s of warm-cache fresh processes, "
        "before and after alternated run by run; min and median of the repeats",
    }
    for horizon in horizons:
        for command, extra in (("design --no-baselines", ["--no-baselines"]), ("design", [])):
            row: dict = {label: {"runs": []} for label in trees}
            for i in range(repeats + 1):  # the first round fills each tree's cache
                for label, tree in trees.items():
                    launcher, tree_env = _launcher(tree)
                    argv = [
                        *launcher,
                        "design",
                        str(ROOT / AUTHORS),
                        "--horizon",
                        str(horizon),
                        "--json",
                        *extra,
                        "--force",
                        "--out",
                        str(work / f"ab-{label}-{horizon}"),
                    ]
                    entry = run(argv, {**env_base(work / f"cache-ab-{label}"), **tree_env}, work)
                    stdout = entry.pop("_stdout")
                    if entry["exit_code"] == 0:
                        entry["final_loss"] = json.loads(stdout)["final_loss"]
                    if i > 0:
                        row[label]["runs"].append(entry)
                    print("ab", horizon, command, label, i, entry, flush=True)
            for label in trees:
                cpu = sorted(e["cpu_s"] for e in row[label]["runs"])
                row[label]["min_cpu_s"] = cpu[0]
                row[label]["median_cpu_s"] = cpu[len(cpu) // 2]
            out.setdefault(str(horizon), {})[command] = row
    return out


def _launcher(tree: Path) -> tuple[list[str], dict[str, str]]:
    """How to run ``tree``'s CLI: its own environment's console script, or (a ``git worktree``
    without one) this interpreter on ``tree``'s sources (what the console script runs, ``PYTHONPATH``)."""
    script = tree / ".venv" / "bin" / "schedopt"
    if script.exists():  # PYTHONPATH too: one inherited from this process must not run another tree
        return [str(script)], {"PYTHONPATH": str(tree)}
    # what the console script runs (``python -m schedopt`` costs ~0.1 CPU s more, in system time)
    return [sys.executable, "-c", CONSOLE_SCRIPT], {"PYTHONPATH": str(tree)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="authors' problem at T = 1e2 and 1e3, no shipped"
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="only design (with baselines) at N = 1e4, T = 1e5 and 1e6, cold and warm, merged into the results",
    )
    parser.add_argument(
        "--table", metavar="JSON", help="print the markdown tables of a results file and exit"
    )
    parser.add_argument(
        "--only", metavar="SPECS", help="comma-separated shipped specs to rerun, merged into the results file"
    )
    parser.add_argument(
        "--horizons",
        metavar="LIST",
        help="comma-separated horizons of the authors' problem to rerun (and the imports), merged into the results file",
    )
    parser.add_argument(
        "--ab", metavar="TREE", help="before/after: warm design of TREE's CLI against this one's"
    )
    parser.add_argument(
        "--ab-repeats", type=int, default=3, metavar="N", help="runs per tree and command (--ab)"
    )
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    with tempfile.TemporaryDirectory(prefix="schedopt-startup-") as tmp:
        work = Path(tmp)
        pycache = work / "pycache"
        warm_up = _env(pycache, None)
        run(
            [
                sys.executable,
                "-c",
                "import schedopt.cli, schedopt.design, schedopt.baselines, schedopt.compare, "
                "schedopt.studies.transfer, schedopt.solvers.jax, matplotlib.pyplot, casadi, diffrax, optax",
            ],
            warm_up,
            ROOT,
        )  # writes the bytecode once

        def env_base(cache: Path) -> dict[str, str]:
            return _env(pycache, cache)

        report: dict = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(terse=True),
                "jax": _version("jax"),
                "schedopt_commit": _git_head(),
            },
            "started_load_1min": os.getloadavg(),
            "notes": [
                "cpu_s: user + system CPU seconds of the fresh process (RUSAGE_CHILDREN delta); the machine "
                "ran another benchmark (load average per entry), so compare CPU seconds, not wall",
                "cold: empty compilation-cache directory; warm: the same command again on it",
                "bytecode cached in a temporary PYTHONPYCACHEPREFIX (as in a user's installation); "
                "imports.no_bytecode shows this environment's PYTHONDONTWRITEBYTECODE=1 cost",
                "in_process: schedopt.solve twice in one process, the second timed (JIT in memory)",
            ],
        }

        def save() -> None:
            text = json.dumps(report, indent=1)
            for secret in (tmp, str(ROOT), str(Path.home())):
                text = text.replace(secret, "<path>")
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / name).write_text(text + "\n")

        name = "startup-quick.json" if args.quick else "startup.json"
        if args.large:  # merged into the results file, the other entries kept
            report = json.loads((RESULTS / name).read_text())
            report["large"] = large(work, env_base)
            save()
            print("updated", f"benchmarks/results/{name}")
            return
        if args.horizons:
            report = json.loads((RESULTS / name).read_text())
            earlier = report["machine"].get("schedopt_commit")
            for row in [*report.get("authors_default", {}).values(), *report.get("shipped", {}).values()]:
                row.setdefault("commit", earlier)  # every set names the commit it measured
            report["machine"]["schedopt_commit"] = _git_head()
            report["imports"] = imports(pycache, repeats=3)
            report["imports"]["commit"] = _git_head()
            save()
            horizons = [int(float(h)) for h in args.horizons.split(",")]
            for horizon in horizons:
                row = command_set(AUTHORS, horizon, work, env_base, quick=False)
                row["in_process"] = in_process_solve(AUTHORS, horizon, env_base(work / "unused"))
                row["commit"] = _git_head()
                row["load_1min_at_start"] = os.getloadavg()[0]
                report["authors_default"][str(horizon)] = row
                save()
            if args.ab:
                report["before_after"] = before_after(
                    Path(args.ab), work, env_base, horizons, args.ab_repeats
                )
                save()
            print("updated", f"benchmarks/results/{name}")
            return
        if args.only:
            report = json.loads((RESULTS / name).read_text())
            for spec in args.only.split(","):
                row = command_set(spec, None, work, env_base, quick=False)
                row["in_process"] = in_process_solve(spec, None, env_base(work / "unused"))
                report["shipped"][spec] = row
                save()
            print("updated", f"benchmarks/results/{name}")
            return
        report["imports"] = imports(pycache, repeats=1 if args.quick else 3)
        save()
        horizons = [100, 1000] if args.quick else [100, 1000, 10000]
        report["authors_default"] = {}
        for horizon in horizons:
            row = command_set(AUTHORS, horizon, work, env_base, args.quick)
            row["in_process"] = in_process_solve(AUTHORS, horizon, env_base(work / "unused"))
            report["authors_default"][str(horizon)] = row
            save()
        report["shipped"] = {}
        if not args.quick:
            for spec in SHIPPED:
                row = command_set(spec, None, work, env_base, quick=False)
                row["in_process"] = in_process_solve(spec, None, env_base(work / "unused"))
                report["shipped"][spec] = row
                save()
        report["finished_load_1min"] = os.getloadavg()
        save()
    print("wrote", f"benchmarks/results/{name}")


#: issue 13, item 5: ``design`` end to end with every baseline at N = 1e4, T = 1e5 and 1e6
LARGE_HORIZONS = (100_000, 1_000_000)
LARGE_TARGETS = {"peak_rss_mb": 2048, "cpu_s": 60}


def large(work: Path, env_base) -> dict:
    """``design`` (with baselines) at N = 1e4 on the authors' problem: cold, then warm cache, per horizon."""
    spec = work / "large.toml"
    text = (ROOT / AUTHORS).read_text().replace("n_modes = 500", "n_modes = 10000")
    spec.write_text(text.replace('name = "authors-default"', 'name = "authors-default-n1e4"'))
    out: dict = {"n_modes": 10000, "targets": LARGE_TARGETS, "commit": _git_head(), "horizons": {}}
    for horizon in LARGE_HORIZONS:
        cache = work / f"cache-large-{horizon}"
        row = {}
        for kind in ("cold", "warm"):
            argv = [str(SCHEDOPT), "design", str(spec), "--horizon", str(horizon), "--json", "--force"]
            entry = run([*argv, "--out", str(work / f"large-{horizon}")], env_base(cache), work)
            stdout = entry.pop("_stdout")
            if entry["exit_code"] == 0:
                result = json.loads(stdout)
                entry["status"] = result["status"]
                entry["final_loss"] = result["final_loss"]
                entry["baselines"] = sorted(result["baselines"])
                entry["solve_wall_time_s"] = round(result["wall_time"], 3)
            entry["meets_targets"] = entry["exit_code"] == 0 and all(
                entry[k] <= limit for k, limit in LARGE_TARGETS.items()
            )
            row[kind] = entry
            print("large", horizon, kind, entry, flush=True)
        out["horizons"][str(horizon)] = row
    return out


def table(report: dict) -> str:
    """Markdown tables of a results file (``--table``): imports, then CPU s per command, cold / warm."""
    lines = ["| module | import CPU s (bytecode) | without bytecode |", "|---|---|---|"]
    imp = report["imports"]
    for module in imp["bytecode"]:
        if module != "python_bare_cpu_s":
            lines.append(f"| `{module}` | {imp['bytecode'][module]:.2f} | {imp['no_bytecode'][module]:.2f} |")
    lines += [
        "",
        "| problem | T | command | cold CPU s | warm CPU s | warm wall s | load | solve `wall_time` (warm) | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [("authors-default", t, r) for t, r in report["authors_default"].items()]
    rows += [(Path(spec).stem, "own", r) for spec, r in report.get("shipped", {}).items()]
    for name, horizon, row in rows:
        commit = row.get("commit") or report["machine"].get("schedopt_commit") or "-"
        for command, entry in row.items():
            if command == "in_process" or not isinstance(entry, dict):
                continue
            cold, warm = entry.get("cold", {}), entry.get("warm", {})

            def cell(e: dict, key: str, fmt: str = "{:.2f}") -> str:
                return fmt.format(e[key]) if key in e else "-"

            load = f"{warm['load_1min'][0]:.1f}" if warm else f"{cold['load_1min'][0]:.1f}"
            lines.append(
                f"| {name} | {horizon} | `{command}` | {cell(cold, 'cpu_s')} | {cell(warm, 'cpu_s')} | "
                f"{cell(warm, 'wall_s', '{:.1f}')} | {load} | {cell(warm, 'solve_wall_time_s')} | {commit} |"
            )
        ip = row.get("in_process", {})
        if "warm_cpu_s" in ip:
            lines.append(
                f"| {name} | {horizon} | in-process `solve`, warm | {ip['cold_cpu_s']:.2f} | {ip['warm_cpu_s']:.2f} | "
                f"{ip['warm_wall_s']:.2f} | | | {commit} |"
            )
    ab = report.get("before_after")
    if ab:
        lines += [
            "",
            f"| T | command | before ({ab['commits']['before']}) CPU s, min / median | "
            f"after ({ab['commits']['after']}) CPU s, min / median | load |",
            "|---|---|---|---|---|",
        ]
        for horizon, commands in ab.items():
            if not isinstance(commands, dict) or horizon == "commits":
                continue
            for command, pair in commands.items():
                b, a = pair["before"], pair["after"]
                loads = [e["load_1min"][0] for label in ("before", "after") for e in pair[label]["runs"]]
                lines.append(
                    f"| {horizon} | `{command}` | {b['min_cpu_s']:.2f} / {b['median_cpu_s']:.2f} | "
                    f"{a['min_cpu_s']:.2f} / {a['median_cpu_s']:.2f} | {min(loads):.1f}–{max(loads):.1f} |"
                )
    return "\n".join(lines)


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _git_head(tree: Path = ROOT) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    out = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    return out.stdout.strip() or None


if __name__ == "__main__":
    main()
