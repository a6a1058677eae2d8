"""Runs an exported ONNX file in onnxruntime: checks it with onnx.checker, feeds it INPUT.npy
(images in the file's layout, or codes) and writes the output to OUTPUT.npy.

    run.py MODEL.onnx INPUT.npy OUTPUT.npy
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort

model_path, input_path, output_path = sys.argv[1:4]
onnx.checker.check_model(onnx.load(model_path), full_check=True)
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
(inp,) = session.get_inputs()
(out,) = session.get_outputs()
x = np.load(input_path).astype(np.float32)
(y,) = session.run([out.name], {inp.name: x})
np.save(output_path, y)
print(inp.name, list(x.shape), "->", out.name, list(y.shape))
