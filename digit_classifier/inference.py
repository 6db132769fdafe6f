"""Serving: one inference interface, answered by LiteRT. Importing this module never imports TensorFlow.

The app and `predict` answer with the version's ``model.tflite``, run by Google's LiteRT
runtime (``ai-edge-litert``); training, fine-tuning and evaluation keep the Keras model.
Measured with the committed model on two cores: the LiteRT runtime imports in 0.12 s
where TensorFlow takes seconds and 700 MB, and on all 10,000 MNIST test images it gives
the same label as Keras for every one (largest probability difference 1.0e-6).

Which runtime answers is hidden behind `Classifier`: ``probabilities(batch)`` takes
(n, 28, 28) or (n, 28, 28, 1) floats in [0, 1] (or one 28x28 image) and returns (n, 10).

The export is part of a version (see versions.py): its SHA-256 is in the metadata and is
checked on load. A version whose export is missing or does not match is never served
silently: a process that already has TensorFlow exports the Keras model again in memory
and says so; any other process refuses it with one line. Only when the LiteRT runtime
cannot be imported at all (no wheel for the platform) does serving fall back to Keras,
saying so in one log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from . import config, versions
from .versions import ModelUnavailableError

log = logging.getLogger(__name__)

# One interpreter serves one image and batches alike, with two threads. Measured on this 2-core
# machine with the committed model (p50): one image 0.64 ms with 1 thread, 0.60 ms with 2; a batch
# of 1,000 images 633 ms with 1 thread, 310 ms with 2. Two threads halve batches and cost one image nothing.
NUM_THREADS = min(2, os.cpu_count() or 1)
# A TFLite tensor's first dimension is resized per call; batches larger than this are split, so a
# call on 10,000 files does not allocate activations for all of them at once.
MAX_BATCH = 1024


class Classifier(Protocol):
    """What serving needs of a model, whichever runtime answers."""

    metadata: dict
    path: Path | None

    @property
    def version(self) -> str: ...

    @property
    def runtime(self) -> str: ...

    def probabilities(self, images: np.ndarray) -> np.ndarray: ...


def as_batch(images: np.ndarray) -> np.ndarray:
    """One 28x28 image, or (n, 28, 28) or (n, 28, 28, 1) floats -> a (n, 28, 28, 1) float32 batch."""
    images = np.asarray(images, dtype=np.float32)
    single = (config.IMAGE_SIZE, config.IMAGE_SIZE)
    if images.shape in (single, single + (1,)):
        images = images[None]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != single + (1,):
        raise ValueError(f"expected 28x28 images, got an array of shape {images.shape}")
    return images


@contextlib.contextmanager
def _native_stderr_silenced():
    """The runtime's C++ prints "INFO: Created TensorFlow Lite XNNPACK delegate" to the process' stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@dataclass
class LiteRTClassifier:
    """A LiteRT interpreter over one exported model; its input's batch size is resized to each call's."""

    runtime: ClassVar[str] = "litert"  # which runtime answers

    content: bytes
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with _native_stderr_silenced():
            self._interpreter = Interpreter(model_content=self.content, num_threads=NUM_THREADS)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None
        # An interpreter is not safe to call from two threads at once; Streamlit runs each session's script in its own.
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "unknown"))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        images = as_batch(images)
        if len(images) == 0:
            return np.zeros((0, config.NUM_CLASSES), dtype=np.float32)
        return np.concatenate([self._invoke(images[i : i + MAX_BATCH]) for i in range(0, len(images), MAX_BATCH)])

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            if len(batch) != self._batch:
                self._interpreter.resize_tensor_input(self._input, [len(batch), config.IMAGE_SIZE, config.IMAGE_SIZE, 1])
                with _native_stderr_silenced():  # the delegate is created here, and says so
                    self._interpreter.allocate_tensors()
                self._batch = len(batch)
            self._interpreter.set_tensor(self._input, np.ascontiguousarray(batch))
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def load_serving_classifier(path: Path | str | None = None, model_dir: Path | str | None = None) -> Classifier:
    """The model the app and `predict` answer with: the current version of `model_dir` (default model/),
    or the version folder, model folder or model file `path`, run by LiteRT.

    Failures are ModelUnavailableError with one line for a person, as for `model.load_classifier`.
    """
    if not litert_available():
        log.warning("ai-edge-litert cannot be imported on this platform: serving with TensorFlow/Keras instead.")
        from .model import load_classifier

        return load_classifier(path, model_dir)
    if path is None:
        version = versions.resolve_current(Path(model_dir) if model_dir else None, tolerate=(versions.LITERT_FILE,))
        return _from_version(version.path, version.metadata)
    path = Path(path)
    if not os.path.lexists(path):
        raise ModelUnavailableError(f"No model at {path}. Train one with `python -m digit_classifier train`.")
    real = Path(os.path.realpath(path))  # model/model.tflite -> model/versions/<v>/model.tflite: one version's files
    if real.is_dir():
        if os.path.lexists(real / versions.CURRENT):
            version = versions.resolve_current(real, tolerate=(versions.LITERT_FILE,))
            return _from_version(version.path, version.metadata)
        return _from_version(*_checked_version(real))
    if not real.is_file():
        raise ModelUnavailableError(f"No model at {path}: it is not a file.")
    if os.path.lexists(real.parent / versions.METADATA_FILE) and real.name in versions.VERSION_FILES:
        return _from_version(*_checked_version(real.parent))
    if real.suffix == ".tflite":
        return _litert(real.read_bytes(), {}, real)
    raise ModelUnavailableError(
        f"{path} is not part of a model version, so it has no checked LiteRT export beside it: "
        "give its version folder, or a .tflite file."
    )


def _checked_version(folder: Path) -> tuple[Path, dict]:
    """The version folder's metadata, every file checked except the export, whose state `_from_version` handles."""
    version = versions.check_folder(folder, tolerate=(versions.LITERT_FILE,))
    return version.path, version.metadata


def _from_version(folder: Path, metadata: dict) -> Classifier:
    export = folder / versions.LITERT_FILE
    problem = versions.export_problem(folder, metadata)
    if problem is None:
        return _litert(versions.read_regular_file(export, versions.MAX_EXPORT_BYTES), metadata, export)
    if "tensorflow" not in sys.modules:
        raise ModelUnavailableError(f"{export} {problem}: it is not served. Roll back to a version that has one (`models` lists them).")
    from .model import export_litert, load_keras_model

    log.warning("%s %s: exported the Keras model again, in memory only.", export, problem)
    # model.keras was checked against its hash with the rest of the version; the version stays as it is
    return _litert(export_litert(load_keras_model(folder / versions.MODEL_FILE)), metadata, None)


def _litert(content: bytes, metadata: dict, path: Path | None) -> LiteRTClassifier:
    try:
        return LiteRTClassifier(content, metadata, path)
    except (ValueError, RuntimeError) as error:  # the runtime's message for a file that is not a TFLite model
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelUnavailableError(f"{path or 'the export'} cannot be loaded by LiteRT: {first}") from None
