"""Reading a scenario's tables strictly: every field checked (type, range, finite numbers), unknown fields
refused, and each problem named by its place, e.g. ``providers[0].keys[2].rpm: must be a whole number >= 0,
not '8'`` (the loader adds the file)."""

from __future__ import annotations

from typing import Any

from pooltui.core import validate


class FieldError(ValueError):
    """A field that is missing, of the wrong type or out of range; ``where`` is its path."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


class Fields:
    """One TOML table being read: take each known field with its check, then :meth:`done` refuses the rest."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, dict):
            raise FieldError(where or "scenario", f"must be a table, not {type(raw).__name__}")
        self.raw, self.where = dict(raw), where

    def _at(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def _take(self, name: str, default: Any, required: bool) -> Any:
        if name not in self.raw:
            if required:
                raise FieldError(self._at(name), "is required")
            return default
        return self.raw.pop(name)

    def text(self, name: str, default: str | None = "", *, required: bool = False) -> Any:
        value = self._take(name, default, required)
        if value is not None and not isinstance(value, str):
            raise FieldError(self._at(name), f"must be text, not {value!r}")
        return value

    def label(self, name: str, what: str = "key label") -> str:
        """A required, label-shaped name (``validate.label``)."""
        try:
            return validate.label(self.text(name, required=True), what)
        except ValueError as exc:
            raise FieldError(self._at(name), str(exc)) from None

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._take(name, default, False)
        if not isinstance(value, bool):
            raise FieldError(self._at(name), f"must be true or false, not {value!r}")
        return value

    def whole(self, name: str, default: int | None = None, minimum: int = 0, maximum: int | None = None) -> Any:
        value = self._take(name, default, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
                maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
            raise FieldError(self._at(name), f"must be a whole number {bound}, not {short(value)}")
        return value

    def number(self, name: str, default: float | None = None, minimum: float = 0.0, *, above: bool = False,
               maximum: float | None = None) -> Any:
        value = self._take(name, default, False)
        if value is None:
            return None
        return check_number(self._at(name), value, minimum, above=above, maximum=maximum)

    def choice(self, name: str, default: Any, allowed: tuple) -> Any:
        value = self._take(name, default, False)
        if value not in allowed:
            raise FieldError(self._at(name), f"must be one of {', '.join(repr(a) for a in allowed if a)}, "
                                             f"not {value!r}")
        return value

    def tables(self, name: str) -> list[tuple[Any, str]]:
        """An array of tables (``[[name]]``), each with its path."""
        value = self._take(name, [], False)
        if not isinstance(value, list):
            raise FieldError(self._at(name), f"must be an array of tables ([[{name}]]), not {value!r}")
        return [(item, f"{self._at(name)}[{i}]") for i, item in enumerate(value)]

    def table(self, name: str) -> tuple[Any, str]:
        return self._take(name, {}, False), self._at(name)

    def any(self, name: str, default: Any = None) -> Any:
        return self._take(name, default, False)

    def done(self, known: str) -> None:
        if self.raw:
            extra = sorted(self.raw)[0]
            raise FieldError(self._at(extra), f"unknown field (known here: {known})")


def check_number(where: str, value: Any, minimum: float = 0.0, *, above: bool = False,
                 maximum: float | None = None) -> float:
    try:
        number = validate.finite("", value, None)
    except ValueError:
        raise FieldError(where, f"must be a finite number, not {short(value)}") from None
    if (number <= minimum) if above else (number < minimum):
        raise FieldError(where, f"must be {'>' if above else '>='} {minimum:g}, not {short(value)}")
    if maximum is not None and number > maximum:
        raise FieldError(where, f"must be <= {maximum:g}, not {short(value)}")
    return number


short = validate.short
