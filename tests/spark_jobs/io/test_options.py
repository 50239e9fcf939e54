"""The shared option model: how every iotlake source reads its string options, and fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from spark_jobs.io.options import (
    Invalid,
    OptionError,
    SourceOptions,
    choice,
    duration,
    flag,
    integer,
    option,
)


class ToyOptionError(OptionError):
    """The toy source's own error class."""


def _even(raw: str) -> int:
    value = integer(minimum=0)(raw)
    if value % 2:
        raise Invalid("an even number", raw.strip())
    return value


@dataclass(frozen=True)
class ToyOptions(SourceOptions):
    SOURCE: ClassVar[str] = "toy"
    ERROR: ClassVar[type[OptionError]] = ToyOptionError
    IGNORED: ClassVar[tuple[str, ...]] = ("path",)

    name: str = option("toy.name", required='.option("toy.name", "<name>")')
    url: str | None = option("endpointUrl", "endpoint", default=None)
    count: int = option("count", parse=_even, default=2)
    label: str = option("label", parse=lambda raw: raw, default="x", keep_blank=True)
    secret: str = option("toy.secret", default="", listed=False)

    def validate(self) -> None:
        if self.label == "forbidden":
            raise self.invalid("label", self.label, "any other label")


def test_values_are_read_by_declared_name_in_any_case_with_defaults_for_the_rest():
    options = ToyOptions.parse({"TOY.NAME": " one ", "Count": "4", "path": "ignored"})

    assert options == ToyOptions(name="one", url=None, count=4, label="x", secret="")


def test_the_first_alias_given_wins_and_blank_counts_as_absent():
    assert ToyOptions.parse({"toy.name": "n", "endpoint": "b"}).url == "b"
    assert ToyOptions.parse({"toy.name": "n", "endpointUrl": " ", "endpoint": "b"}).url == "b"
    assert ToyOptions.parse({"toy.name": "n", "count": ""}).count == 2
    assert ToyOptions.parse({"toy.name": "n", "label": ""}).label == ""  # kept blank


def test_every_mistake_is_one_line_naming_the_option_what_was_given_and_what_to_write():
    def error(options: dict[str, str]) -> str:
        with pytest.raises(ToyOptionError) as raised:
            ToyOptions.parse(options)
        assert "\n" not in str(raised.value)
        return str(raised.value)

    assert error({}) == (
        'toy source: option \'toy.name\' is required: .option("toy.name", "<name>")'
    )
    assert error({"toy.name": "n", "count": " 3 "}) == (
        "toy source: option 'count' must be an even number, not '3'"
    )
    assert error({"toy.name": "n", "count": "many"}) == (
        "toy source: option 'count' must be an integer >= 0, not 'many'"
    )
    assert error({"toy.name": "n", "label": "forbidden"}) == (
        "toy source: option 'label' must be any other label, not 'forbidden'"
    )
    assert error({"toy.name": "n", "cuont": "2"}) == (
        "toy source: option 'cuont' is not known; did you mean 'count'? "
        "known options: toy.name, endpointUrl, endpoint, count, label"
    )
    assert "did you mean" not in error({"toy.name": "n", "zzz": "1"})


def test_names_in_errors_are_spelled_as_declared_whatever_case_spark_passed():
    with pytest.raises(OptionError) as raised:
        ToyOptions.parse({"toy.name": "n", "cOuNt": "1"})
    assert "option 'count' must be an even number" in str(raised.value)


def test_an_option_has_either_a_default_or_is_required():
    with pytest.raises(TypeError):
        option("a")
    with pytest.raises(TypeError):
        option("a", default=1, required="give it")


@pytest.mark.parametrize(
    ("parse", "raw", "value"),
    [
        (flag, " TRUE ", True),
        (flag, "false", False),
        (integer(), "7", 7),
        (integer(1, 10), "10", 10),
        (duration, "400ms", 0.4),
        (duration, "10s", 10.0),
        (duration, "2 min", 120.0),
        (duration, "3", 3.0),
        (choice("csv", "json"), " JSON", "json"),
    ],
)
def test_parsers_read_their_values(parse, raw, value):
    result = parse(raw)
    assert type(result) is type(value)
    assert result == pytest.approx(value)


@pytest.mark.parametrize(
    ("parse", "raw", "expected"),
    [
        (flag, "yes", "true or false"),
        (integer(), "0", "a positive integer"),
        (integer(1, 10), "11", "1..10"),
        (integer(minimum=0), "-1", "an integer >= 0"),
        (duration, "soon", "a duration like '400ms' or '10s'"),
        (choice("a", "b", "c"), "d", "a | b | c"),
    ],
)
def test_parsers_say_what_to_write_instead(parse, raw, expected):
    with pytest.raises(Invalid) as raised:
        parse(raw)
    assert raised.value.expected == expected
