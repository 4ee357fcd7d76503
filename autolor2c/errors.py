"""The library's one base error for bad input. It names the parameter, never a command-line flag: the CLI
alone maps parameters to flags and turns the error into one line and exit code 2.

This module imports nothing, so every room (``lor2c/`` included) can derive its errors from it.
"""

from __future__ import annotations

from typing import Any

_NO_VALUE = object()


class UserError(ValueError):
    """Bad input from the user (a value, a file, a setting); the message names the bad value.

    ``param`` is the library's name of the parameter at fault (``budget``, ``model``, ``storage``). With a
    ``value`` the message reads ``bad <param> <value>: <reason>``; a reason can also name it as ``{param}``
    (replaced, not formatted). :meth:`message` says the same with another name for the parameter.
    """

    def __init__(self, reason: str, *, param: str | None = None, value: Any = _NO_VALUE):
        self.reason, self.param, self.value = reason, param, value
        super().__init__(self.message())

    def message(self, name: str | None = None) -> str:
        """The message, naming the parameter ``name`` (default: ``param``)."""
        if self.param is None:
            return self.reason
        name = name or self.param
        reason = self.reason.replace("{param}", name)
        return reason if self.value is _NO_VALUE else f"bad {name} {self.value!r}: {reason}"
