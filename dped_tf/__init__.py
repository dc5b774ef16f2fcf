"""dped_tf: DPED (Ignatov et al., ICCV 2017) in TensorFlow 2 / Keras."""

__version__ = "0.1.0"
