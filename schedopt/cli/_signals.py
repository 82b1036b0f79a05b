"""Signals: SIGINT and SIGTERM always stop a command, even where Python swallows the exception."""

from __future__ import annotations


class Terminated(BaseException):
    """SIGTERM, raised by the handler :func:`main` installs (a BaseException, as KeyboardInterrupt is)."""


_REDELIVERY_SECONDS = 1.0  # a swallowed interrupt is delivered again this often


def _install_signal_handlers() -> None:
    """SIGTERM raises :class:`Terminated`; SIGINT raises KeyboardInterrupt, at the top level only.

    A signal that arrives while Python runs a callback whose exceptions are swallowed
    (a ``gc`` callback JAX registers, a ``__del__``) would be lost there: the
    unraisable-exception hook sees it and delivers the signal again a moment later.
    Against any other place that swallows it, the first signal also starts a thread
    that delivers it again every ``_REDELIVERY_SECONDS`` until the process has left
    (``main`` exits at once when the exception reaches it), and an output set is
    never committed while a signal is pending (``_io.PENDING_SIGNALS``). So an
    interrupt always stops the command.
    """
    import signal
    import sys
    import threading
    import time

    from schedopt import _io

    def redeliver(signum: int) -> None:
        while True:
            time.sleep(_REDELIVERY_SECONDS)
            signal.raise_signal(signum)

    def on_signal(signum, frame):
        if not _io.PENDING_SIGNALS:
            threading.Thread(target=redeliver, args=(signum,), daemon=True).start()
        _io.PENDING_SIGNALS.append(signum)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    previous_hook = sys.unraisablehook

    def on_unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt | Terminated):
            signum = signal.SIGINT if isinstance(info.exc_value, KeyboardInterrupt) else signal.SIGTERM
            timer = threading.Timer(0.02, signal.raise_signal, (signum,))
            timer.daemon = True  # a non-daemon timer kept the process alive into interpreter teardown
            timer.start()
            return
        previous_hook(info)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.unraisablehook = on_unraisable
