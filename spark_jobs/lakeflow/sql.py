"""Databricks SQL pipeline files as plain data: the datasets they declare and their queries.

A small tokenizer of our own reads the file: strings, backquoted names and comments are
single tokens, so a `;` or `--` inside them never splits a statement nor is rewritten.
Queries are rewritten for open-source Spark: `LIVE.` prefixes go, streaming reads become
`STREAM(x)` (plain `x` in `batch_query`), Auto Loader calls become placeholder views the
runner fills from files. Anything else is refused with file, line and what to write
instead: a skipped statement would be a silently missing table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SqlPipelineError(ValueError):
    """A file this runner cannot run: `<file>:<line>: <problem>; <what to write instead>`."""


@dataclass(frozen=True)
class Expectation:
    """`CONSTRAINT name EXPECT (condition)`: failing rows are kept and counted ("warn"),
    dropped (ON VIOLATION DROP ROW) or stop the update (ON VIOLATION FAIL UPDATE)."""

    name: str
    condition: str
    action: Literal["warn", "drop", "fail"]


@dataclass(frozen=True)
class FileSource:
    """A `cloud_files(...)`/`read_files(...)` call: the query reads `view` instead, and the
    runner loads `path` into that temporary view first (a stream when `streaming`)."""

    view: str
    path: str
    format: str
    options: dict[str, str]
    streaming: bool


@dataclass(frozen=True)
class SqlDataset:
    """One CREATE statement: what the runner needs to declare the dataset and fill it.

    `query` reads streams as `STREAM(x)`; `batch_query` reads plain `x`, for when the runner
    feeds the query the rows of one micro-batch. `file` and `line` (where the statement
    starts) let messages point back at the source.
    """

    kind: Literal["streaming_table", "materialized_view", "temporary_view"]
    name: str
    comment: str | None
    table_properties: dict[str, str]
    partition_cols: tuple[str, ...]
    cluster_by: tuple[str, ...]
    schema: str | None
    expectations: tuple[Expectation, ...]
    query: str
    batch_query: str
    file_sources: tuple[FileSource, ...]
    private: bool
    location: str | None
    file: str
    line: int


@dataclass(frozen=True)
class SqlPipeline:
    """A whole SQL file: its datasets in file order and its `SET key = value` pairs."""

    datasets: tuple[SqlDataset, ...]
    configuration: dict[str, str]


# read_files' names of Auto Loader options; the cloudFiles reader wants `cloudFiles.<name>`.
_AUTO_LOADER: tuple[str, ...]
_AUTO_LOADER = ("schemaHints", "schemaLocation", "inferColumnTypes", "schemaEvolutionMode")
_AUTO_LOADER += ("rescuedDataColumn", "includeExistingFiles", "maxFilesPerTrigger")
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<comment>--[^\n]*|/\*.*?\*/)|(?P<quoted>`(?:``|[^`])*`)"
    r"""|(?P<string>'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")|(?P<unmatched>/\*|\*/|['"`])"""
    r"|(?P<word>\w+)|(?P<punct>.)",
    re.S,
)
_SPACE, _NAME, _FILES = ("space", "comment"), ("word", "quoted"), ("CLOUD_FILES", "READ_FILES")
# After `FROM stream`, these words show `stream` is a table's name, not the STREAM keyword.
_NOT_A_TABLE = {"AS", "WHERE", "JOIN", "ON", "GROUP", "ORDER", "LIMIT", "UNION", "WINDOW"}
_CDC = "write a CREATE OR REFRESH MATERIALIZED VIEW that keeps the latest row per key"
_CREATE = "write CREATE OR REFRESH STREAMING TABLE or CREATE OR REFRESH MATERIALIZED VIEW"
_REFUSED = {
    "APPLY": ("APPLY CHANGES INTO is not supported", _CDC),
    "AUTO": ("AUTO CDC is not supported", _CDC),
    "INSERT": ("INSERT is not supported", f"{_CREATE} with the query after AS"),
    "CREATE FLOW": ("CREATE FLOW is not supported", "write its query in the table it feeds"),
    "CREATE TABLE": ("CREATE TABLE is not supported", _CREATE),
    "CREATE VIEW": ("a persisted VIEW is not supported", "write CREATE TEMPORARY VIEW"),
    "CREATE OR": ("CREATE OR REPLACE is not supported", "write CREATE OR REFRESH"),
}
_SUPPORTED = f"{_CREATE}, CREATE TEMPORARY VIEW or SET key = value"
_CLAUSES = ("COMMENT", "TBLPROPERTIES", "PARTITIONED", "CLUSTER", "LOCATION", "USING")


class _Token(NamedTuple):
    kind: str  # a group name of _TOKEN
    text: str
    line: int


class _Statement:
    """Tokens of one statement (or part of one), read a significant token at a time."""

    def __init__(self, tokens: list[_Token], file: str, line: int = 0):
        self.tokens, self.file, self.pos = tokens, file, 0
        self.at = [index for index, token in enumerate(tokens) if token.kind not in _SPACE]
        self.line = line or (tokens[self.at[0]].line if self.at else 0)  # where it starts

    def peek(self, ahead: int = 0) -> _Token | None:
        index = self.pos + ahead
        return self.tokens[self.at[index]] if index < len(self.at) else None

    def is_next(self, *words: str) -> bool:
        """Whether the next tokens are these (upper-case) words or punctuation."""
        tokens = [self.peek(ahead) for ahead in range(len(words))]
        return all(
            t and t.kind in ("word", "punct") and t.text.upper() == w
            for t, w in zip(tokens, words, strict=True)
        )

    def accept(self, *words: str) -> bool:
        found = self.is_next(*words)
        self.pos += len(words) if found else 0
        return found

    def expect(self, *words: str, fix: str) -> None:
        if not self.accept(*words):
            raise self.error(f"expected {' '.join(words)} but found {self.found()}", fix)

    def next(self) -> _Token:
        if (token := self.peek()) is None:
            raise self.error("the statement ends too early", "finish it and close every (")
        self.pos += 1
        return token

    def found(self) -> str:
        token = self.peek()
        return repr(token.text.split("\n")[0]) if token else "the end of the statement"

    def error(self, problem: str, fix: str) -> SqlPipelineError:
        return SqlPipelineError(f"{self.file}:{self.line}: {problem}; {fix}")

    def part(self, tokens: list[_Token]) -> _Statement:
        return _Statement(tokens, self.file, self.line)

    def rest(self) -> list[_Token]:
        return self.tokens[self.at[self.pos] :] if self.pos < len(self.at) else []

    def inside(self) -> list[_Token]:
        """The tokens between the `(` that comes next and its matching `)`."""
        self.expect("(", fix="put the list in parentheses")
        start, depth = self.at[self.pos], 0
        while depth >= 0:
            token = self.next()
            depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == "punct" else 0
        return self.tokens[start : self.at[self.pos - 1]]

    def items(self) -> list[_Statement]:
        """The comma-separated items of the parenthesized list that comes next."""
        items: list[list[_Token]] = [[]]
        depth = 0
        for token in self.inside():
            depth += {"(": 1, ")": -1}.get(token.text, 0) if token.kind == "punct" else 0
            if token.kind == "punct" and token.text == "," and depth == 0:
                items.append([])
            else:
                items[-1].append(token)
        return [part for part in map(self.part, items) if part.at]


def parse_file(path: Path) -> SqlPipeline:
    """The datasets and configuration of the SQL pipeline file at `path`."""
    return parse_text(Path(path).read_text(encoding="utf-8"), str(path))


def parse_text(text: str, file: str = "<sql>") -> SqlPipeline:
    """The datasets and configuration of SQL pipeline source `text`, named `file` in errors."""
    datasets: list[SqlDataset] = []
    configuration: dict[str, str] = {}
    for statement in _statements(text, file):
        if statement.accept("SET"):
            key, value = _pair(statement, "SET", "write SET key = value")
            configuration[key] = value
        elif statement.accept("CREATE"):
            datasets.append(_create(statement))
        else:
            word = statement.next().text.upper()
            raise statement.error(*_REFUSED.get(word, (f"{word} is not supported", _SUPPORTED)))
    return SqlPipeline(tuple(datasets), configuration)


def _statements(text: str, file: str) -> list[_Statement]:
    """`text` split at the `;`s outside strings, names and comments; empty ones dropped."""
    groups: list[list[_Token]] = [[]]
    line = 1
    for match in _TOKEN.finditer(text):
        if match.lastgroup == "unmatched":  # `*/` too: block comments do not nest here
            fix = "close every quote and /* comment, and do not nest comments"
            raise SqlPipelineError(f"{file}:{line}: unmatched {match[0]}; {fix}")
        if match.lastgroup == "punct" and match[0] == ";":
            groups.append([])
        else:
            groups[-1].append(_Token(match.lastgroup or "", match[0], line))
        line += match[0].count("\n")
    statements = [_Statement(tokens, file) for tokens in groups]
    return [statement for statement in statements if statement.at]


def _text(tokens: list[_Token], collapse: bool = True) -> str:
    """Tokens as SQL, comments dropped; `collapse` turns every run of spaces into one."""
    pieces: list[str] = []
    for token in tokens:
        if token.kind in _SPACE and (collapse or token.kind == "comment"):
            if pieces and pieces[-1] != " " and (collapse or token.text.startswith("/*")):
                pieces.append(" ")
        else:
            pieces.append(token.text)
    return "".join(pieces).strip()


def _unquote(token: _Token) -> str:
    """A string's value, a backquoted name's name, any other token's text."""
    if token.kind == "quoted":
        return token.text[1:-1].replace("``", "`")
    if token.kind != "string":
        return token.text
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), token.text[1:-1], flags=re.S)


def _value(tokens: list[_Token]) -> str:
    """A literal's value: a lone string unquoted, anything else (`1`, `true`) as written."""
    significant = [token for token in tokens if token.kind not in _SPACE]
    if len(significant) == 1 and significant[0].kind == "string":
        return _unquote(significant[0])
    return _text(tokens)


def _pair(part: _Statement, what: str, fix: str) -> tuple[str, str]:
    """`key = value` or `key => value` from here on, both read by `_value`."""
    tokens = part.rest()
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.text == "=":
            value = part.part(tokens[index + 1 :])
            value.accept(">")
            key = _value(tokens[:index])
            if key and value.peek() and " " not in key:
                return key, _value(value.rest())
            break
    raise part.error(f"{what} needs key = value", fix)


def _name(statement: _Statement) -> list[_Token]:
    """The parts of the dotted name that comes next: `cat.sch.t`, `` `a b`.t ``."""
    if not (token := statement.peek()) or token.kind not in _NAME:
        raise statement.error(f"expected a name but found {statement.found()}", "name it")
    parts = [statement.next()]
    while statement.is_next(".") and (token := statement.peek(1)) and token.kind in _NAME:
        statement.pos += 2
        parts.append(token)
    return parts


def _create(statement: _Statement) -> SqlDataset:
    statement.accept("OR", "REFRESH")
    private = statement.accept("PRIVATE")
    kind: Literal["streaming_table", "materialized_view", "temporary_view"]
    if not private and statement.accept("TEMPORARY"):
        statement.accept("LIVE")
        statement.expect("VIEW", fix="write CREATE TEMPORARY VIEW name AS query")
        kind = "temporary_view"
    elif statement.accept("STREAMING"):
        statement.accept("LIVE")
        statement.expect("TABLE", fix="write CREATE OR REFRESH STREAMING TABLE name AS query")
        kind = "streaming_table"
    elif statement.accept("MATERIALIZED", "VIEW") or statement.accept("LIVE", "TABLE"):
        kind = "materialized_view"
    else:
        token = statement.peek()
        word = ("CREATE " + (token.text.upper() if token else "")).strip()
        raise statement.error(*_REFUSED.get(word, (f"{word} is not supported", _SUPPORTED)))
    name = ".".join(_unquote(part) for part in _name(statement))
    columns, expectations = [], []
    for item in statement.items() if statement.is_next("(") else []:
        if item.accept("CONSTRAINT"):
            expectations.append(_expectation(item))
        else:
            columns.append(_text(item.tokens))
    clauses = _clauses(statement, name)
    sources: list[FileSource] = []
    query, batch_query = _rewrite(statement.part(statement.rest()), sources)
    if not query:
        fix = "write AS SELECT ... (tables fed only by flows are not supported)"
        raise statement.error(f"{name} has no query after AS", fix)
    if kind == "materialized_view" and any(source.streaming for source in sources):
        raise statement.error(
            f"materialized view {name} reads files as a stream",
            "write CREATE OR REFRESH STREAMING TABLE, or read_files without STREAM",
        )
    return SqlDataset(
        kind=kind,
        name=name,
        comment=clauses.get("COMMENT"),
        table_properties=clauses.get("TBLPROPERTIES", {}),
        partition_cols=clauses.get("PARTITIONED", ()),
        cluster_by=clauses.get("CLUSTER", ()),
        schema=", ".join(columns) or None,
        expectations=tuple(expectations),
        query=query,
        batch_query=batch_query,
        file_sources=tuple(sources),
        private=private,
        location=clauses.get("LOCATION"),
        file=statement.file,
        line=statement.line,
    )


def _expectation(item: _Statement) -> Expectation:
    fix = "write CONSTRAINT name EXPECT (condition) [ON VIOLATION DROP ROW | FAIL UPDATE]"
    name = _unquote(item.next())
    item.expect("EXPECT", fix=fix)
    condition = _text(item.inside())
    action: Literal["warn", "drop", "fail"] = "warn"
    if item.accept("ON", "VIOLATION", "DROP", "ROW"):
        action = "drop"
    elif item.accept("ON", "VIOLATION", "FAIL", "UPDATE"):
        action = "fail"
    if item.peek() or not condition:
        raise item.error(f"CONSTRAINT {name} is not an expectation this runner knows", fix)
    return Expectation(name, condition, action)


def _clauses(statement: _Statement, name: str) -> dict[str, Any]:
    """COMMENT, TBLPROPERTIES, PARTITIONED BY, CLUSTER BY, LOCATION, USING, up to AS."""
    clauses: dict[str, Any] = {}
    while (token := statement.peek()) and not statement.accept("AS"):
        word = token.text.upper()
        if word not in _CLAUSES or word in clauses:
            raise statement.error(
                f"{statement.found()} is not supported here in {name}",
                "give COMMENT, TBLPROPERTIES, PARTITIONED BY, CLUSTER BY, LOCATION and USING "
                "DELTA at most once each, then AS and the query",
            )
        statement.pos += 1
        if word in ("COMMENT", "LOCATION"):
            if (token := statement.next()).kind != "string":
                raise statement.error(f"{word} {token.text} is not a quoted string", "quote it")
            clauses[word] = _unquote(token)
        elif word == "TBLPROPERTIES":
            fix = "write TBLPROPERTIES ('key' = 'value', ...)"
            clauses[word] = dict(_pair(item, word, fix) for item in statement.items())
        elif word == "USING":
            statement.expect("DELTA", fix="write USING DELTA or nothing: every table is Delta")
        else:
            statement.expect("BY", fix="write PARTITIONED BY (a, b) or CLUSTER BY (a, b)")
            clauses[word] = tuple(map(_column, statement.items()))
    return clauses


def _column(item: _Statement) -> str:
    column = ".".join(_unquote(part) for part in _name(item))
    if item.peek():
        raise item.error(f"{item.found()} in a column list", "list column names only")
    return column


def _rewrite(query: _Statement, sources: list[FileSource]) -> tuple[str, str]:
    """`query` for Spark and its batch form, with file reads recorded in `sources`."""
    streamed: list[_Token] = []
    batch: list[_Token] = []
    done, previous = 0, ""
    while (token := query.peek()) is not None:
        spacing = query.tokens[done : query.at[query.pos]]
        word = token.text.upper() if token.kind == "word" and previous != "." else ""
        following = query.peek(2)
        if word == "LIVE" and query.is_next("LIVE", ".") and following and following.kind in _NAME:
            query.pos += 2  # `LIVE.x` is `x`: every dataset is in the pipeline's schema
            reading = ("", "")
        elif word == "STREAM" and (found := _stream(query, previous, sources)):
            reading = found
        elif word in _FILES and query.is_next(word, "("):
            reading = _file_source(query, word == "CLOUD_FILES", sources)
        else:
            query.pos += 1
            reading = (token.text, token.text)
        streamed += [*spacing, _Token("word", reading[0], 0)]
        batch += [*spacing, _Token("word", reading[1], 0)]
        done = query.at[query.pos - 1] + 1
        previous = query.tokens[done - 1].text.upper()
    return _text(streamed, collapse=False), _text(batch, collapse=False)


def _stream(query: _Statement, previous: str, sources: list[FileSource]) -> tuple[str, str] | None:
    """`STREAM(x)`, `STREAM x` or `STREAM [(]read_files(...)[)]` in its two forms, else None."""
    mark = query.pos
    query.pos += 1
    wrapped = query.accept("(")
    following = query.peek()
    word = following.text.upper() if following and following.kind == "word" else ""
    if word in _FILES and query.is_next(word, "("):
        reading = _file_source(query, True, sources)
        if wrapped:
            query.expect(")", fix="close STREAM( with )")
        return reading
    bare = previous in ("FROM", "JOIN") and word not in _NOT_A_TABLE
    if following and following.kind in _NAME and (wrapped or bare):
        parts = _name(query)
        if len(parts) > 1 and parts[0].kind == "word" and parts[0].text.upper() == "LIVE":
            parts = parts[1:]
        name = ".".join(part.text for part in parts)
        if not wrapped or query.accept(")"):
            return f"STREAM({name})", name
    query.pos = mark
    return None


def _file_source(query: _Statement, streaming: bool, sources: list[FileSource]) -> tuple[str, str]:
    """A `cloud_files(...)` or `read_files(...)` call, recorded as a placeholder view."""
    function = query.next().text.lower()
    fix = (
        "write cloud_files('path', 'format'[, map('key', 'value', ...)])"
        if function == "cloud_files"
        else "write read_files('path', format => 'json'[, name => 'value', ...])"
    )
    args = query.items()
    first = args[0].peek() if args and len(args[0].at) == 1 else None
    if first is None or first.kind != "string":
        raise query.error(f"{function} needs a quoted path first", fix)
    path, file_format, options = _unquote(first), "", {}
    if function == "cloud_files":
        if len(args) not in (2, 3):
            raise query.error(f"cloud_files takes 2 or 3 arguments, not {len(args)}", fix)
        file_format = _value(args[1].tokens)
        if len(args) == 3:
            args[2].expect("MAP", fix=fix)
            values = [_value(value.tokens) for value in args[2].items()]
            if len(values) % 2 or args[2].peek():
                raise query.error("cloud_files options are not a map of pairs", fix)
            options = dict(zip(values[::2], values[1::2], strict=True))
    auto_loader = {name.lower(): f"cloudFiles.{name}" for name in _AUTO_LOADER}
    for arg in args[1:] if function == "read_files" else []:
        key, value = _pair(arg, "each named argument of read_files", fix)
        if key.lower() == "format":
            file_format = value
        else:
            options[auto_loader.get(key.lower(), key)] = value
    if not file_format:
        raise query.error(f"{function}({path!r}) names no format", fix)
    view = f"__files_{len(sources)}"
    sources.append(FileSource(view, path, file_format, options, streaming))
    return (f"STREAM({view})" if streaming else view), view


_RELATION = re.compile(r"'UnresolvedRelation \[(.*)\], \[.*\], (true|false)")
_CTE = re.compile(r"\bCTE \[(.*)\]")


def referenced_tables(spark: SparkSession, query: str) -> list[tuple[tuple[str, ...], bool]]:
    """The tables `query` reads, each with whether it reads it as a stream, in plan order.

    Spark's own parser finds them, so every FROM, JOIN and subquery counts; the query's
    common table expressions are not tables and are left out. A name part holding ", "
    cannot be told apart in Spark's plan text and comes back as two parts.
    """
    from pyspark.errors import ParseException  # only this function needs Spark

    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(query).toString()
    except ParseException as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise SqlPipelineError(lines[0] if lines else "Spark cannot parse the query") from None
    ctes = {name.lower() for match in _CTE.finditer(plan) for name in match[1].split(", ")}
    tables: list[tuple[tuple[str, ...], bool]] = []
    for match in _RELATION.finditer(plan):
        parts, streaming = tuple(match[1].split(", ")), match[2] == "true"
        if (len(parts) > 1 or parts[0].lower() not in ctes) and (parts, streaming) not in tables:
            tables.append((parts, streaming))
    return tables
