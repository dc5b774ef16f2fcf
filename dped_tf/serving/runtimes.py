"""Each exported file run in its own runtime, as a callable float32 [1, h, w, 3] ->
enhanced: onnxruntime, OpenVINO, LiteRT (ai-edge-litert), TF (SavedModel) and Keras.
The tests and `experiments/bench_runtimes.py` use these; docs/serving.md shows the same
calls without dped_tf."""

import numpy as np

from dped_tf.lazy import lazy_import

ort = lazy_import("onnxruntime")
ov = lazy_import("openvino")
litert = lazy_import("ai_edge_litert.interpreter")
tf = lazy_import("tensorflow")

# OpenVINO's CPU plugin computes in bfloat16 by default where the CPU has it (AVX512-BF16,
# AMX); "f32" asks for float32.
OPENVINO_PRECISIONS = ("f32", "bf16")


def keras_runner(generator):
  """The in-library reference: the generator on the whole image, clipped to [0, 1], as
  float32 whatever the generator's precision."""
  return lambda images: np.clip(generator(images, training=False).numpy(), 0.0,
                                1.0).astype(np.float32)


def saved_model_runner(path):
  signature = tf.saved_model.load(path).signatures["serving_default"]
  return lambda images: signature(images=tf.constant(images))["enhanced"].numpy()


def onnx_runner(path, threads=None):
  options = ort.SessionOptions()
  if threads:
    options.intra_op_num_threads = threads
  session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
  name = session.get_inputs()[0].name
  return lambda images: session.run(None, {name: images})[0]


def openvino_runner(path, precision="f32", threads=None):
  """OpenVINO on the CPU with the inference precision hint `precision` (f32 or bf16)."""
  config = {"INFERENCE_PRECISION_HINT": precision}
  if threads:
    config["INFERENCE_NUM_THREADS"] = threads
  compiled = ov.Core().compile_model(path, "CPU", config)
  return lambda images: compiled(images)[0]


def litert_runner(path, threads=None):
  """LiteRT's interpreter (XNNPACK on CPU), resized to each input's shape; int8 input and
  output tensors are quantised and dequantised with their own scale and zero point."""
  interpreter = litert.Interpreter(model_path=path, num_threads=threads)
  (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
  shape = []

  def run(images):
    if list(images.shape) != shape:
      interpreter.resize_tensor_input(inp["index"], images.shape)
      interpreter.allocate_tensors()
      shape[:] = images.shape
    if inp["dtype"] != np.float32:
      scale, zero = inp["quantization"]
      info = np.iinfo(inp["dtype"])
      images = np.clip(np.round(images / scale + zero), info.min, info.max).astype(inp["dtype"])
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    enhanced = interpreter.get_tensor(out["index"])
    if out["dtype"] != np.float32:
      scale, zero = out["quantization"]
      enhanced = (enhanced.astype(np.float32) - zero) * scale
    return enhanced
  return run
