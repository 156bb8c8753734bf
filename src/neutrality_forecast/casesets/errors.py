"""Validation errors that name file, row and column."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CaseSetError", "Violation"]


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule of the data contract.

    Attributes
    ----------
    file : str
        File name inside the case set, e.g. ``events.csv``.
    row : int or None
        1-based **data row** number (the header is row 0, the first record row 1). ``None``
        for problems with the file as a whole (missing, empty, wrong encoding).
    column : str
        Column name, ``-`` when the problem is not about one column.
    message : str
        What is wrong, in words.

    """

    file: str
    row: int | None
    column: str
    message: str

    def __str__(self) -> str:
        row = "-" if self.row is None else str(self.row)
        return f"{self.file}:{row}:{self.column}: {self.message}"


class CaseSetError(ValueError):
    """A case set breaks the data contract.

    The message lists every violation found, one per line, as ``file:row:column: message``
    where ``row`` is the 1-based data row (header = 0; ``-`` for whole-file problems).
    The individual :class:`Violation` objects are in :attr:`violations`.
    """

    def __init__(self, violations: list[Violation], *, root: str = "") -> None:
        self.violations = sorted(set(violations), key=_sort_key)
        self.root = root
        head = f"case set {root!r} is invalid" if root else "case set is invalid"
        lines = [f"{head}: {len(self.violations)} violation(s)"]
        lines += [str(v) for v in self.violations]
        super().__init__("\n".join(lines))


def _sort_key(v: Violation) -> tuple[str, int, str, str]:
    return (v.file, -1 if v.row is None else v.row, v.column, v.message)
