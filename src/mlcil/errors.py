"""The one exception type users see for bad input.

Every check at mlcil's boundary (files, arrays, protocol strings, learner specs)
raises :class:`MlcilError` with a one-line message naming the field, the file and
line where there is one, and what was expected. The CLI turns it into a one-line
``error: ...`` and exit code 2.
"""


class MlcilError(ValueError):
    """Bad input: a missing file, a malformed line, a wrong shape, an unknown name."""
