"""Serving: the bundle the export stage writes, and the Scorer that loads it (ONNX Runtime only).

Import `inttower.serving.scorer` in a service: it needs neither torch nor the training code.
"""
