"""Converting: the mode table, the TFLite converter, its debugger, ai-edge-quantizer."""
