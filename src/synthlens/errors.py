"""One error type for bad user input.

The CLI turns :class:`InputError` into exit code 2 and a one-line message that names the
file (or option) and the problem. Bugs raise ordinary exceptions and keep their traceback.
"""

from __future__ import annotations

from os import PathLike


class InputError(ValueError):
    """Bad user input: a file, key, option or value that synthlens cannot use.

    ``source`` names where the problem is (a path, ``path:key``, an option name) and
    ``problem`` says what is wrong, so that the message reads ``source: problem``.
    """

    def __init__(self, source: str | PathLike[str], problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")
