"""Every export module imports without TensorRT or a GPU (STYLE §11)."""

import importlib

import pytest


@pytest.mark.parametrize("name", ["export.spec", "export.wrapper", "export.graph_edit", "export.check",
                                  "export.onnx_export", "export.fp16", "export.trt", "export.trtexec", "export.cli",
                                  "benchmarks.macs", "benchmarks.trt_compare"])
def test_import(name):
    importlib.import_module(name)
