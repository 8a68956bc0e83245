"""Reading and running `.tflite` files: the flatbuffer, LiteRT, op naming, measuring."""
