"""The one error type the CLI turns into exit code 2 and a one-line message.

Anything the user can fix (a typo in a suite, an unknown name, a device the machine lacks)
raises :class:`BadInput`; anything else is a bug and keeps its traceback.
"""


class BadInput(ValueError):
    """Input archbench refuses; the message is one line naming the bad value and what is allowed."""
