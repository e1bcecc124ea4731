"""The one exception type users see for bad input.

Every check at mlcil's boundary (files, arrays, protocol strings, learner specs)
raises :class:`MlcilError` with a one-line message naming the field, the file and
line where there is one, and what was expected. The CLI turns it into a one-line
``error: ...`` and exit code 2. :class:`NotFittedError` is the one subtype: a learner used
before it learned anything.
"""


class MlcilError(ValueError):
    """Bad input: a missing file, a malformed line, a wrong shape, an unknown name."""


class NotFittedError(MlcilError, AttributeError):
    """A learner was asked to score, forget or save before its first ``learn``.

    Like scikit-learn's ``sklearn.exceptions.NotFittedError`` it is both a ``ValueError``
    (through :class:`MlcilError`) and an ``AttributeError``, so code that catches either, or
    ``hasattr``-style duck typing, treats it the same way. It does not subclass scikit-learn's
    class: importing scikit-learn would add about 0.7 s to every ``import mlcil``.
    """
