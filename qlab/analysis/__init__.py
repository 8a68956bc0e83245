"""Looking inside a quantized model: grids, captured tensors, buckets, per-layer error, variants.

- `grid`: what a quantization grid is, and which one the converter picks for a tensor.
- `converter_grids`: every grid of a converted model, predicted from the float model.
- `capture`: run models keeping every tensor; pair a deployed model's ops with its float twin's.
- `buckets`: where values land on a grid; rounding vs clipping.
- `layer_errors`: which layer adds how much error (local and accumulated views).
- `variants`: what to change: layers kept in float, per-tensor weights.
"""
