"""Reader options of iotlake's own data sources, read once into a frozen dataclass.

Spark hands a Python data source its options as strings, under names it treats as
case-insensitive (and lower-cases on the way). `cloudFiles` and `kinesis` read them the same
way, through this module, so a user meets one behaviour and one kind of error in both:

- every option is a field of the source's frozen dataclass, declared with `option(...)`: its
  Databricks name (then any alias), the parser from text to the field's type, and either a
  default, used when the option is absent or blank, or how to give it when it is required;
- a name no field declares is refused, with the closest known name when one is close;
- every mistake is an `OptionError` of one line that names the option, shows what was given
  and says what to write instead:

      kinesis source: option 'maxRecordsPerFetch' must be 1..10000, not '20000'

The dataclass is parsed on the driver, where a mistake should surface, and travels to the
executors as it is: plain values, cheap to pickle, hashable so per-process caches can key
on it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self

_SPEC = "iotlake.option"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$", re.IGNORECASE)
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}

Parser = Callable[[str], Any]


class OptionError(ValueError):
    """A source option is wrong or missing; the message is one line naming it."""


class Invalid(ValueError):
    """Raised by a parser for a value that does not fit.

    `expected` is what to write instead, as it reads after "must be"; `given` is the part of
    the value at fault when that is not the whole value (one bad type in a list of hints).
    """

    def __init__(self, expected: str, given: str | None = None):
        super().__init__(expected)
        self.expected = expected
        self.given = given


@dataclass(frozen=True)
class OptionSpec:
    """How one option is read: its names (the Databricks one first) and its parser."""

    names: tuple[str, ...]
    parse: Parser
    required: str | None = None  # how to give a required option, for the error
    keep_blank: bool = False  # a blank value reaches the parser instead of meaning "absent"
    listed: bool = True  # named when the error lists the known options


def text(raw: str) -> str:
    """The value without surrounding blanks."""
    return raw.strip()


def flag(raw: str) -> bool:
    """`true` or `false`, in any case."""
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise Invalid("true or false")
    return value == "true"


def integer(minimum: int = 1, maximum: int | None = None) -> Parser:
    """A parser of whole numbers from `minimum` up to `maximum` (when there is one)."""
    if maximum is not None:
        expected = f"{minimum}..{maximum}"
    elif minimum == 1:
        expected = "a positive integer"
    else:
        expected = f"an integer >= {minimum}"

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise Invalid(expected) from None
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid(expected)
        return value

    return parse


def duration(raw: str) -> float:
    """Seconds from `400ms`, `10s`, `2m`, `1min` or a bare number of seconds."""
    match = _DURATION.match(raw)
    if not match:
        raise Invalid("a duration like '400ms' or '10s'")
    amount, unit = float(match.group(1)), (match.group(2) or "s").lower()
    return amount * _SECONDS_PER_UNIT[unit]


def choice(*values: str) -> Parser:
    """A parser of one of `values`, matched in any case and returned as spelled here."""
    expected = " or ".join(values) if len(values) == 2 else " | ".join(values)

    def parse(raw: str) -> str:
        for value in values:
            if value.lower() == raw.strip().lower():
                return value
        raise Invalid(expected)

    return parse


def option(
    name: str,
    *aliases: str,
    parse: Parser = text,
    default: Any = MISSING,
    required: str | None = None,
    keep_blank: bool = False,
    listed: bool = True,
) -> Any:
    """A dataclass field read from option `name` (or an alias, the first one given wins).

    Give either a `default` or, for a required option, `required`: how to set it, e.g.
    `.option("streamName", "<stream>")`, which the error for a missing option quotes.
    """
    if (default is MISSING) == (required is None):
        raise TypeError(f"option {name!r} needs exactly one of default and required")
    spec = OptionSpec((name, *aliases), parse, required, keep_blank, listed)
    return field(default=default, metadata={_SPEC: spec})


@dataclass(frozen=True)
class SourceOptions:
    """Base of a source's options: subclasses declare fields with `option(...)`."""

    SOURCE: ClassVar[str] = "data"  # the format name errors begin with
    ERROR: ClassVar[type[OptionError]] = OptionError
    IGNORED: ClassVar[tuple[str, ...]] = ()  # names Spark may add that the source does not use

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> Self:
        """Read every option; raise the source's OptionError naming the first bad one."""
        given = {str(key).lower(): (str(key), value) for key, value in options.items()}
        specs = cls.specs()
        accepted = {name.lower() for spec in specs.values() for name in spec.names}
        accepted |= {name.lower() for name in cls.IGNORED}
        for lowered, (key, _) in given.items():
            if lowered not in accepted:
                raise cls.unknown(key)
        values: dict[str, Any] = {}
        for attribute, spec in specs.items():
            found = _first_given(given, spec)
            if found is None:
                if spec.required is not None:
                    raise cls.missing(spec.names[0], spec.required)
                continue
            name, raw = found
            try:
                values[attribute] = spec.parse(raw)
            except Invalid as bad:
                shown = raw if bad.given is None else bad.given
                raise cls.invalid(name, shown, bad.expected) from None
        parsed = cls(**values)
        parsed.validate()
        return parsed

    def validate(self) -> None:
        """Checks across options, after each was read; subclasses raise `invalid(...)`."""

    @classmethod
    def specs(cls) -> dict[str, OptionSpec]:
        """Each option field's spec, by attribute name, in declaration order."""
        return {item.name: item.metadata[_SPEC] for item in fields(cls) if _SPEC in item.metadata}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option name the source reads (aliases included), as Databricks spells it."""
        return tuple(name for spec in cls.specs().values() for name in spec.names)

    @classmethod
    def error(cls, name: str, problem: str) -> OptionError:
        """The source's error about option `name`: `<source> source: option '<name>' ...`."""
        return cls.ERROR(f"{cls.SOURCE} source: option '{name}' {problem}")

    @classmethod
    def invalid(cls, name: str, given: Any, expected: str) -> OptionError:
        """A value that does not fit: what was given and what to write instead."""
        return cls.error(name, f"must be {expected}, not {given!r}")

    @classmethod
    def missing(cls, name: str, how: str) -> OptionError:
        """A required option that was not given, and how to give it."""
        return cls.error(name, f"is required: {how}")

    @classmethod
    def unknown(cls, key: str) -> OptionError:
        """A name no option has; suggests the closest known name when one is close."""
        listed = [name for spec in cls.specs().values() if spec.listed for name in spec.names]
        by_lower = {name.lower(): name for name in listed}
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
        hint = f"did you mean '{by_lower[close[0]]}'? " if close else ""
        return cls.error(key, f"is not known; {hint}known options: {', '.join(listed)}")


def _first_given(given: Mapping[str, tuple[str, Any]], spec: OptionSpec) -> tuple[str, str] | None:
    """The first of the spec's names given a value, as (that name, the value as text).

    The name is spelled as declared, since Spark may have lower-cased the key. A blank value
    counts as absent unless the spec keeps blanks.
    """
    for name in spec.names:
        entry = given.get(name.lower())
        if entry is None or entry[1] is None:
            continue
        raw = str(entry[1])
        if raw.strip() or spec.keep_blank:
            return name, raw
    return None
