"""No orphans: a multiprocessing forkserver exits when the sweep driver dies while it imports us.

``selfdistill sweep -j N`` runs its workers from a forkserver that preloads the library (two
seconds or more of imports: scikit-learn, SciPy). The forkserver notices its driver's death only
once it enters its loop, after the preload; a driver killed (``kill -9``) during the preload left
the forkserver, and the resource tracker that waits for it, alive for the rest of the import.
:func:`forkserver_import_watch` closes that window: around the library's imports (the body of
the preload module ``experiments._preload``; the package root is lazy, so those imports happen
there), in a forkserver only, a thread exits the process as soon as the driver is gone. The workers
themselves watch the driver once they run (``experiments.sweep``). Standard library only: this runs
before NumPy loads.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from types import FrameType


def _forkserver_alive_fd() -> int | None:
    """The ``alive_r`` pipe of ``multiprocessing.forkserver.main`` when this import runs inside it
    (the forkserver's preload), else None. The pipe reads EOF once the driver (and every process
    the forkserver forked) is gone."""
    fs = sys.modules.get("multiprocessing.forkserver")
    if fs is None:
        return None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "main" and code.co_filename == fs.__file__:
            fd = frame.f_locals.get("alive_r")
            return fd if isinstance(fd, int) else None
        frame = frame.f_back
    return None


def _driver_gone(parent: int, alive_r: int) -> bool:
    if os.getppid() != parent:  # re-parented: the driver died
        return True
    readable, _, _ = select.select([alive_r], [], [], 0)
    return bool(readable)  # nobody writes to this pipe: readable means EOF


@contextlib.contextmanager
def forkserver_import_watch(every: float = 0.05):
    """Within the block, exit this process within ``every`` seconds of its driver's death, if
    this process is a multiprocessing forkserver preloading the library; otherwise do nothing.

    The thread is stopped and joined when the block ends, so the forkserver forks its workers
    from a single-threaded process, as it must.
    """
    alive_r = _forkserver_alive_fd()
    if alive_r is None:
        yield
        return
    parent = os.getppid()
    if _driver_gone(parent, alive_r):
        os._exit(1)
    stop = threading.Event()

    def watch():
        while not stop.wait(every):
            if _driver_gone(parent, alive_r):
                os._exit(1)

    thread = threading.Thread(target=watch, name="selfdistill-forkserver-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
