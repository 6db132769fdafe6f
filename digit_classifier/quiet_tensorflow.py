"""TensorFlow and Keras, imported without their native start-up lines.

When its native libraries load and when it first lists devices, TensorFlow
prints lines such as "oneDNN custom operations are on" and "failed call to
cuInit" straight to the process' stderr. They are not errors, the variable
TF_CPP_MIN_LOG_LEVEL no longer silences them, and they bury the output of the
command line and the notebooks. Python exceptions are not affected.

    from .quiet_tensorflow import keras, tf
"""

from __future__ import annotations

import os
import sys


def _import_quietly():
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow

        return tensorflow, keras
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras
            import tensorflow

            tensorflow.config.list_logical_devices()
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    return tensorflow, keras


tf, keras = _import_quietly()
