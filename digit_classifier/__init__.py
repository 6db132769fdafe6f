"""Handwritten digit classifier: MNIST CNN, one preprocessing path, feedback loop."""

import os

# TensorFlow prints several lines at import (oneDNN, CUDA probing) that are not errors; keep them quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "1.0.0"
