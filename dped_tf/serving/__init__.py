"""Shipping a generator (docs/serving.md): a TF Serving SavedModel (`saved_model`), ONNX,
OpenVINO and LiteRT files through Keras' own `model.export` (`formats`), LiteRT int8
(`quantization`), and each file run in its own runtime (`runtimes`). `served` is the one
definition of what every format computes."""

LITERT_PRECISIONS = ("float32", "float16", "dynamic_int8", "int8")  # formats.litert_models
