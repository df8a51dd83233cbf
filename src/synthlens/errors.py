"""Error types: bad user input, and a failed stage of a run.

The CLI turns :class:`InputError` into exit code 2 and a one-line message that names the
file (or option) and the problem. A failure inside a stage of a run becomes a
:class:`StageError` naming the stage and the file it was writing (exit code 1, after the
traceback of the cause). Other bugs raise ordinary exceptions and keep their traceback.
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


class StageError(RuntimeError):
    """A stage of a run failed; the original exception is chained as ``__cause__``.

    ``stage`` is the stage's name in ``manifest.json`` (``generators/ldm``, ``results``,
    ...) and ``output`` the file or folder it was writing. The stages finished before it
    stay finished: after fixing the cause, ``--resume`` continues from this stage.
    """

    def __init__(self, stage: str, output: str | PathLike[str], cause: BaseException) -> None:
        self.stage = stage
        self.output = str(output)
        super().__init__(f"stage {stage} failed ({self.output}): {type(cause).__name__}: "
                         f"{cause}; the stages before it are kept: fix the cause and "
                         "continue the run with --resume")
