"""The ``schedopt`` application: the typer app, its global options, and how a command ends.

Exit codes: 0 success; 1 solver failure (did not converge, diverged); 2 usage or
spec error (one line naming the key); 130 SIGINT; 143 SIGTERM. ``--debug`` (or
``SCHEDOPT_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from schedopt._blas import BLAS_THREAD_VARIABLES as _BLAS_THREAD_VARIABLES
from schedopt.cli import _coerce
from schedopt.cli._signals import Terminated, _install_signal_handlers
from schedopt.errors import SchedoptError


class _Group(TyperGroup):
    """The app's click group: in standalone mode (how ``CliRunner`` and a plain ``app()`` call it)
    a usage error is one line on stderr with exit 2, as in :func:`main`, not a boxed panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # main() handles the errors itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        import sys

        argv = sys.argv[1:] if args is None else [str(a) for a in args]
        parent = super().main
        code = _exit_code(lambda: parent(argv, prog_name, complete_var, standalone_mode=False, **extra), argv)
        sys.exit(code if isinstance(code, int) else 0)

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
        return command

    def format_help(self, ctx, formatter):
        _tidy_help(self, ctx)
        return super().format_help(ctx, formatter)


def _tidy_help(command, ctx) -> None:
    """What ``--help`` shows of a command, made to read cleanly at any width (80 columns included)."""
    _name_file_lists(command)
    _flags_without_type(command, ctx)
    command.help = _reflow(command.help)


def _flags_without_type(command, ctx) -> None:
    """Help shows a boolean flag as ``--json  --no-json`` (or ``--force``), with no ``<bool>`` after it.

    Typer's rich help prints the type of every option, flags included (``--help  -h  <bool>``: its own
    help option has no way to set a metavar); a flag takes no value, so it has none to name. Set on
    the command's own parameter objects, the help option (built on first use) among them."""
    from typer.core import TyperOption

    for param in (*command.params, command.get_help_option(ctx)):
        if isinstance(param, TyperOption) and param.is_flag and not param.count:
            param.display_type_rich = _no_type


def _no_type(ctx) -> None:
    return None


def _reflow(help_text: str | None) -> str | None:
    """A docstring's paragraphs as paragraphs: its single line breaks become spaces.

    Typer's rich help keeps the line breaks of every paragraph after the first, so a docstring
    wrapped at the source's width breaks mid-sentence once the terminal wraps it again (at 80
    columns: ``... stay fixed; the`` / ``solver optimises ...``). Paragraphs of examples
    (``Example:``) are command lines and keep their lines."""
    if not help_text:
        return help_text
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    return "\n\n".join(
        part if part.startswith(("Example:", "\b")) else " ".join(part.split("\n")) for part in paragraphs
    )


def _name_file_lists(command) -> None:
    """Help shows a variadic argument's type as ``FILE...``, not typer's ``<list[Path]>``.

    Typer's argument type column ignores ``metavar``; every variadic argument of schedopt's
    commands is a list of files. Set on the command's own parameter objects (no change to typer)."""
    from typer.core import TyperArgument

    for param in command.params:
        if isinstance(param, TyperArgument) and param.nargs != 1:
            param.display_type_rich = lambda ctx: "FILE..."


def _exit_code(run, argv: list[str]):
    """What ``run`` (the group, not standalone) returns, or the exit code of a usage error or an abort,
    printed as one line (not click's boxed panel); shared by :func:`main` and ``CliRunner``'s path."""
    try:
        return run()
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        return _usage_error(exc, argv)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 1


_coerce.install()  # plain option values without importing pydantic

app = typer.Typer(
    cls=_Group,
    name="schedopt",
    help="Design optimal learning-rate schedules by optimal control of a solvable SGD model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from schedopt import __version__

        typer.echo(f"schedopt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", metavar="", help="Show the traceback of an error (also: environment SCHEDOPT_DEBUG=1)."
        ),
    ] = False,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            metavar="",
            help="Do not use the compilation cache (also: environment SCHEDOPT_NO_CACHE=1; "
            "SCHEDOPT_CACHE_DIR moves it).",
        ),
    ] = False,
) -> None:
    """schedopt: optimal training schedules from a solvable model of SGD."""
    _DEBUG[0] = debug or _debug_env()
    _schedopt_warnings_on_one_line()
    if no_cache:
        _no_cache()
    else:
        _cache()


def _schedopt_warnings_on_one_line() -> None:
    """Show schedopt's own warnings as ``warning: ...`` on stderr (others keep Python's format)."""
    import warnings

    shown = warnings.showwarning
    if getattr(shown, "_schedopt", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("schedopt"):
            typer.echo(f"warning: {_one_line(message)}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show._schedopt = True
    warnings.showwarning = show


def _cache() -> None:
    """Turn the compilation cache on for the command's process (the library alone never does).

    By the environment, read when schedopt first loads JAX (``--help`` and commands that
    need no JAX never load it) and inherited by the workers of a Ray cluster the command
    starts; ``SCHEDOPT_NO_CACHE=1`` still wins.
    """
    import os
    import sys

    os.environ["SCHEDOPT_CACHE"] = "1"
    if "schedopt._jax" in sys.modules:
        sys.modules["schedopt._jax"].enable_cache()


def _no_cache() -> None:
    """Turn the compilation cache off for this process, before or after JAX was loaded."""
    import os
    import sys

    os.environ["SCHEDOPT_NO_CACHE"] = "1"  # read when schedopt first loads JAX
    if "schedopt._jax" in sys.modules:
        sys.modules["schedopt._jax"].disable_cache()


EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
_DEBUG = [False]


def _debug_env() -> bool:
    import os

    return os.environ.get("SCHEDOPT_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _one_blas_thread(environ) -> None:
    """One OpenBLAS thread for this process, unless the user set a thread count.

    Must run before NumPy loads (OpenBLAS reads it once). schedopt's host-side linear
    algebra is small (L-BFGS-B on a few hundred parameters; JAX does not use OpenBLAS),
    and OpenBLAS's idle workers busy-wait after every threaded call: on a loaded machine
    that tripled the CPU time of a solve (benchmarks/README.md, start-up). The numbers are
    the same (the designed schedules are bitwise identical either way). The library does
    the same within its own calls (``schedopt._blas``), which this makes a no-op.
    """
    if not any(environ.get(name) for name in _BLAS_THREAD_VARIABLES):
        environ["OPENBLAS_NUM_THREADS"] = "1"


#: Thresholds of the cyclic garbage collector in the command's process (Python's: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 10)


def _fewer_collections() -> None:
    """Run the cyclic garbage collector less often in the command's process.

    Loading JAX, SciPy and matplotlib creates millions of long-lived objects, and with Python's
    thresholds the collector walks them again and again while a command runs: about 0.3 CPU s
    of a warm ``design`` at T = 1e3 (a seventh of it; benchmarks/README.md, start-up). A young
    generation of 50,000 objects instead of 700 makes that a few short collections; garbage
    is still collected (reference counting frees all but cycles, and the cycles at the larger
    threshold), so memory stays bounded in a long study. Numbers are unchanged.
    """
    import gc

    gc.set_threshold(*GC_THRESHOLDS)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _error_line(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an exception that ends a command."""
    if isinstance(exc, SchedoptError):
        return f"error: {exc}", exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted (SIGINT)", EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return "error: terminated (SIGTERM)", EXIT_TERMINATED
    if isinstance(exc, MemoryError):
        return "error: out of memory (lower the horizon, n_modes or the input's size)", 2
    if isinstance(exc, OverflowError):
        return f"error: a number is too large to compute with ({_one_line(exc)})", 2
    if isinstance(exc, OSError):
        where = next((str(p) for p in (exc.filename, exc.filename2) if p is not None), None)
        reason = exc.strerror or _one_line(exc)
        return (f"error: {where!r}: {reason}" if where else f"error: {reason}"), 2
    raise exc


_HANDLED = (SchedoptError, KeyboardInterrupt, Terminated, MemoryError, OverflowError, OSError)


def _command(fn):
    """A command whose errors become one line on stderr and an exit code.

    SchedoptError: 2 (bad input) or 1 (solver failure); OSError (with its path),
    MemoryError and OverflowError: 2; Ctrl-C: 130; SIGTERM: 143. ``--debug`` (or
    SCHEDOPT_DEBUG=1) shows the traceback instead. Anything else is a bug and keeps it.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            if "trust" not in kwargs:
                return fn(*args, **kwargs)
            from schedopt.schedule import trusting

            with trusting(kwargs["trust"]) as notes:
                result = fn(*args, **kwargs)
            for note in notes:  # a schedule loaded unverified (--trust, or an older file) is said so
                typer.echo(f"note: {_one_line(note)}", err=True)
            return result
        except _HANDLED as exc:
            if _DEBUG[0] or _debug_env():
                raise
            line, code = _error_line(exc)
            typer.echo(line, err=True)
            raise typer.Exit(code) from None

    return wrapper


def _given_value(param: Any, argv: list[str]) -> str | None:
    """The value the command line gave an option that click refused (its message omits it)."""
    for opt in getattr(param, "opts", None) or ():
        if not opt.startswith("-"):
            continue
        for i, arg in enumerate(argv):
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


def _usage_error(exc, argv: list[str]) -> int:
    """Print a click usage error (bad value, unknown option, missing argument) as one line; its exit code."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":
        typer.echo(exc.format_message(), err=True)
    else:
        where = f"{ctx.command_path}: " if ctx is not None else ""
        given = _given_value(getattr(exc, "param", None), argv)
        got = f" (got {given!r})" if given is not None else ""
        typer.echo(f"error: {where}{_one_line(exc.format_message())}{got}", err=True)
    return getattr(exc, "exit_code", 2)


def main() -> None:
    """Console-script entry point: every error, usage error and interrupt ends in one line on stderr.

    Exit codes: 0 success, 1 solver failure, 2 bad input or usage, 130 SIGINT, 143 SIGTERM.
    """
    import os
    import sys

    _one_blas_thread(os.environ)
    _fewer_collections()
    _install_signal_handlers()
    code = 0
    try:
        code = _exit_code(lambda: app(standalone_mode=False), sys.argv[1:]) or 0
    except (KeyboardInterrupt, Terminated) as exc:  # outside a command (parsing, imports)
        if _DEBUG[0] or _debug_env():
            raise
        line, code = _error_line(exc)
        typer.echo(line, err=True)
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        # leave at once: the output is complete; interpreter teardown with JAX's threads
        # mid-computation can crash after an interrupt. The signal handled, its redelivery
        # (``_install_signal_handlers``: every second until the process has left) must not
        # raise again on the way out: raised here it would end the process by the default
        # action (status -2 or -15, no message) instead of with this code
        import signal

        for held in (signal.SIGINT, signal.SIGTERM):
            signal.signal(held, signal.SIG_IGN)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _leave(code)


def _leave(code: int) -> None:
    """End the process with ``code``: exit handlers, flushed output, and no interpreter teardown.

    Taking JAX, NumPy and matplotlib apart module by module at exit cost ~0.5 CPU s of a
    warm ``design`` (a sixth of it; benchmarks/README.md, start-up) and serves nothing once
    the command has returned: its files are written and closed. The ``atexit`` handlers still
    run (logging, temporary folders, a Ray cluster the command started). The ordinary exit
    (``sys.exit``) is kept when another non-daemon thread is alive (it waits for it) or the
    output cannot be flushed (Python reports that itself).
    """
    import atexit
    import os
    import sys
    import threading

    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        sys.exit(code)
    import signal

    # the command has returned and its outputs are committed: a signal now changes nothing it wrote,
    # and raised inside an exit handler it would end the process by the default action (no message,
    # status -15) instead of with the command's code
    for held in (signal.SIGINT, signal.SIGTERM):
        signal.signal(held, signal.SIG_IGN)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)
