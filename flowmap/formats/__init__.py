"""Output formats of ``flowmap check``: one small protocol, chosen by an enum.

Every reporter turns a finished :class:`~flowmap.model.Analysis` into one string, so
the CLI decides where it goes (stdout or ``--output``) and the reporters never touch
files or streams. Reporters are imported lazily: ``flowmap check --format text``
never loads the SARIF code.
"""

from __future__ import annotations

import enum
import importlib
from typing import Protocol, runtime_checkable

from ..model import Analysis, Severity

__all__ = ["OutputFormat", "Reporter", "reporter_for"]


class OutputFormat(str, enum.Enum):
    """The ``--format`` choices; the value is what the user types."""

    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> "OutputFormat":
        try:
            return cls(text.strip().lower())
        except ValueError:
            from ..errors import ConfigError

            names = ", ".join(f.value for f in cls)
            raise ConfigError(f"unknown format {text!r}: use one of {names}") from None


@runtime_checkable
class Reporter(Protocol):
    """Renders an analysis as the complete text of one output document."""

    def render(self, analysis: Analysis) -> str: ...


_MODULES = {
    OutputFormat.TEXT: ("flowmap.formats.text", "TextReporter"),
    OutputFormat.JSON: ("flowmap.formats.json", "JsonReporter"),
    OutputFormat.SARIF: ("flowmap.formats.sarif", "SarifReporter"),
}


def reporter_for(fmt: OutputFormat, *, fail_on: Severity = Severity.HIGH, unicode: bool = True) -> Reporter:
    """The reporter for ``fmt``; ``fail_on`` feeds verdicts, ``unicode`` allows arrows."""
    module_name, class_name = _MODULES[OutputFormat(fmt)]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(fail_on=fail_on, unicode=unicode)
