"""Errors a user can cause, each naming the file (or input) and the problem.

Every error that reaches the CLI or the window is a :class:`ProtoviewError`; its
``str`` is one line, ``"<where>: <problem>"``, fit to print without a traceback.
"""

from __future__ import annotations

import os


class ProtoviewError(Exception):
    """A problem with the user's input, named by where it is and what is wrong.

    Parameters
    ----------
    where:
        The file path (or a short name of the input, e.g. ``"--k"``) at fault.
    problem:
        One sentence a user can act on.
    needs:
        The options that can fix it (``"arch"``, ``"split"``, ``"nb_proxy"``,
        ``"preprocess"``): the window asks for them instead of only showing the message.
    """

    def __init__(
        self, where: str | os.PathLike[str] | None, problem: str, *, needs: tuple[str, ...] = ()
    ) -> None:
        self.where = os.fspath(where) if where is not None else None
        self.problem = problem
        self.needs = tuple(needs)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.where}: {self.problem}" if self.where else self.problem


class CheckpointError(ProtoviewError):
    """A checkpoint that is missing, unreadable, unsafe or does not fit."""


class UntrustedCodeError(CheckpointError):
    """A checkpoint that holds pickled Python code and was not loaded: loading it would run
    that code. The CLI's ``--trust-checkpoint`` (the window: a confirmation) allows it."""


class DatasetError(ProtoviewError):
    """A dataset that is missing, empty, unreadable or inconsistent."""


class SnapshotError(ProtoviewError):
    """An HDF5 snapshot or feature file that cannot be read or written."""


class ParameterError(ProtoviewError):
    """A parameter value outside its valid range (``where`` names the parameter)."""


class CancelledError(Exception):
    """Raised inside a long job when its cancel token was set."""


def is_cancelled(cancel) -> bool:
    """Whether a job's cancel token is set: None (never), a ``threading.Event`` or a
    callable returning True."""
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())
