"""What `python -m qlab` runs: silent functions that write files and return what they measured,
each with a `summary`; `qlab.__main__` parses, calls and prints."""
