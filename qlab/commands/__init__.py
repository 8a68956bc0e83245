"""What `python -m qlab` runs. Each command is a silent function that writes its files and returns
what it measured, with a `summary` that formats it; `qlab.__main__` parses the arguments, calls
the command, and prints. Notebooks and tests use the library, never these modules."""
