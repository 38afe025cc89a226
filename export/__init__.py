"""Export: zero-shot ONNX graphs with the task vector folded in, and TensorRT engines."""
