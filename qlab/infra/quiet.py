"""Hold back what TensorFlow prints to stderr (start-up banners, pages of converter log); the text
is kept in the yielded object, e.g. to read after an error."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import warnings

HARMLESS = (  # warnings TensorFlow raises on qlab's deliberate paths; nothing for a user to do
    ".*Statistics for quantized inputs were expected",  # the converter's legacy input-stats check
    ".*tf.lite.Interpreter is deprecated",  # the QuantizationDebugger still runs on it
)


class Captured:
    """What was printed while the context was active."""

    def __init__(self, fd_file, py_stream: io.StringIO):
        self._fd_file, self._py = fd_file, py_stream

    def read(self) -> str:
        """Returns what was printed so far: file descriptor 2's output, then sys.stderr's."""
        sys.stderr.flush()
        self._fd_file.seek(0)
        return self._fd_file.read().decode(errors="replace") + self._py.getvalue()


@contextlib.contextmanager
def stderr():
    """Redirect file descriptor 2, sys.stderr and TensorFlow's Python loggers for a while."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]
    levels = [lg.level for lg in loggers]
    with tempfile.TemporaryFile(mode="w+b") as fd_file:
        py_stream = io.StringIO()
        os.dup2(fd_file.fileno(), 2)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stderr(py_stream), warnings.catch_warnings():
                for message in HARMLESS:
                    warnings.filterwarnings("ignore", message=message)
                yield Captured(fd_file, py_stream)
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)
