"""How fast and how big: latency under every kernel choice (`bench`), where each byte of a file
goes (`sizes`), and the work per inference with the latency floor it implies (`work`)."""
