"""The workshop beside the library: checked exercises (one module per notebook), the quantization
explorer (widgets over one layer quantized live) and the teacher's section timings.

It imports qlab; qlab never imports it (tests/test_layout.py), except the command line's `sections`.
"""
