"""The errors archbench raises on purpose.

Anything the user can fix (a typo in a suite, an unknown name, a device the machine lacks)
raises :class:`BadInput`, which the CLI turns into exit code 2 and one line; anything else is a
bug and keeps its traceback. :class:`Diverged` and :class:`PointTimeout` are faults of one point
while it runs: the runner records them as the point's status (``diverged``, ``timeout``) and the
run goes on.
"""


class BadInput(ValueError):
    """Input archbench refuses; the message is one line naming the bad value and what is allowed."""


class Diverged(ArithmeticError):
    """A loss or a metric came out NaN or infinite."""


class PointTimeout(TimeoutError):
    """A point ran past the suite's ``timeout``."""


class NotApplicable(Exception):
    """What a point asks for that cannot apply to this model or device (a one-sequence probe of an
    encoder-decoder, the encoder pass of a decoder-only model, cuDNN attention on a CPU, an attention
    backend for an LSTM): its rows are ``skipped`` with this message, never an error."""
