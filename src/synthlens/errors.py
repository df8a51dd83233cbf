"""Error types: bad user input (and a setting that does not fit), and a failed stage of a run.

The CLI turns :class:`InputError` into exit code 2 and a one-line message that names the
file (or option) and the problem. A failure inside a stage of a run becomes a
:class:`StageError` naming the stage and the file it was writing (exit code 1, after the
traceback of the cause). Other bugs raise ordinary exceptions and keep their traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
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


class SettingError(InputError, TypeError):
    """A setting that does not fit what the code declares: an unknown name, a value of the
    wrong type or out of range. It names the setting by its key path (``params.widht``,
    ``generators[0].sample.truncation``) and, where there is a list, the accepted values;
    :meth:`within` puts the key under a parent key and :meth:`in_file` names the file, so
    the message reads ``run.yaml: generators[0].params.widht: unknown parameter of dcgan;
    accepted: beta1, width, z_dim``.

    It is a ``ValueError`` and a ``TypeError``, as Python raises one or the other for a bad
    keyword argument or value.
    """

    def __init__(self, key: str, problem: str, accepted: Iterable[object] | None = None,
                 *, file: str | PathLike[str] | None = None) -> None:
        self.key = key
        self.bare_problem = problem
        self.accepted = None if accepted is None else [str(a) for a in accepted]
        self.file = None if file is None else str(file)
        self.detail = (problem if self.accepted is None
                       else f"{problem}; accepted: {', '.join(self.accepted) or 'none'}")
        where = key if self.file is None else f"{self.file}: {key}" if key else self.file
        super().__init__(where, self.detail)

    def within(self, parent: str) -> SettingError:
        """The same error with its key below ``parent`` (``params`` + ``widht``)."""
        return SettingError(join_key(parent, self.key), self.bare_problem, self.accepted,
                            file=self.file)

    def in_file(self, file: str | PathLike[str]) -> SettingError:
        """The same error, naming the file it was found in."""
        return SettingError(self.key, self.bare_problem, self.accepted, file=file)


def join_key(parent: str, key: str) -> str:
    """``generators[0]`` + ``params.widht`` -> ``generators[0].params.widht``."""
    if not parent:
        return key
    if not key:
        return parent
    return f"{parent}{key}" if key.startswith("[") else f"{parent}.{key}"


def key_parts(key: str) -> list[str]:
    """The mapping keys of a key path, list indices dropped (``a[0].b`` -> ``[a, b]``)."""
    return [part for part in re.sub(r"\[\d+\]", "", key).split(".") if part]
