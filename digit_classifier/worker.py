"""Preprocessing in other processes: for batches of files, and for pictures too large to decode here.

Each worker is a fresh `python -m digit_classifier.worker`. It reads one pickled
request from stdin, (function, list of arguments), and writes one pickled
("ok", result) or ("error", PreprocessError) per argument to stdout, in order,
as soon as each is ready. The function is any module-level function: pickle
sends it by name and the worker imports its module, so this module knows
nothing of its callers (they import it, never the other way round).

Why not `multiprocessing`: its "spawn" start method re-runs the caller's main
script in every worker, so a student's script without an
`if __name__ == "__main__":` guard would run twice (or fail); "fork" is unsafe
once TensorFlow's threads exist. A plain subprocess has neither problem.
Workers import numpy, SciPy and Pillow, never TensorFlow: about 0.3 s to start.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

IN_WORKER = "DIGIT_CLASSIFIER_WORKER"  # set in a worker's environment: workers never start workers
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


class WorkerFailed(RuntimeError):
    """A worker process ended without answering (killed, out of memory)."""


def in_worker() -> bool:
    return os.environ.get(IN_WORKER) == "1"


class Worker:
    """One worker process running `task` (a module-level function) on each of `arguments`; iterate for the results."""

    def __init__(self, task: Callable[[Any], Any], arguments: list):
        python_path = os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
        self.remaining = len(arguments)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "digit_classifier.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env={**os.environ, IN_WORKER: "1", "PYTHONPATH": python_path},
        )
        request = pickle.dumps((task, arguments), protocol=pickle.HIGHEST_PROTOCOL)
        # Threads write the request and collect the answers, so the worker never waits on a full pipe
        # while the caller does something else (loading the model, say).
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._feeder = threading.Thread(target=self._send, args=(request,), daemon=True)
        self._reader = threading.Thread(target=self._receive, args=(len(arguments),), daemon=True)
        self._feeder.start()
        self._reader.start()

    def _send(self, request: bytes) -> None:
        try:
            self.process.stdin.write(request)
            self.process.stdin.close()
        except (BrokenPipeError, ValueError, OSError):  # the worker died or was closed: reading says so
            pass

    def _receive(self, count: int) -> None:
        for _ in range(count):
            try:
                self._answers.put(pickle.load(self.process.stdout))
            except (EOFError, pickle.UnpicklingError, OSError, ValueError) as error:
                self._answers.put(("failed", error))
                return

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        """The next result; a PreprocessError raised by the task is raised here."""
        if self.remaining == 0:
            self.close()
            raise StopIteration
        status, value = self._answers.get()
        if status == "failed":
            self.close()
            raise WorkerFailed("a preprocessing worker process ended unexpectedly") from value
        self.remaining -= 1
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        if self.process.poll() is None and self.remaining:
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)
        self._feeder.join(timeout=5)
        self.process.stdout.close()


def main() -> None:
    from .errors import PreprocessError

    function, arguments = pickle.load(sys.stdin.buffer)

    out = sys.stdout.buffer
    for argument in arguments:
        try:
            answer = ("ok", function(argument))
        except PreprocessError as error:
            answer = ("error", error)
        pickle.dump(answer, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


if __name__ == "__main__":
    main()
