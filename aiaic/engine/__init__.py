"""Engines other than eager PyTorch: ONNX export (`export`), ONNX Runtime (`ort`), int8 (`quantize`)."""
