"""How each flow of a pipeline is written, read off its analyzed plan, and which tables ride
inside another flow's micro-batches.

Lakeflow decides both unasked, and so does iotlake:
- a flow without an aggregate appends its rows; an aggregate's changed groups are merged on
  the output columns computed from its grouping expressions alone; a global or sorted
  aggregate replaces the table;
- a streaming table whose only upstream is another streaming table computed in the same
  micro-batch, and which asks for no `spark_conf` of its own, is computed there too, from
  the rows just written, when its plan keeps no state (rows appended) or is a grouped
  aggregate of `max`, `min`, `sum` and `count` only, without a drop rule (the batch's
  partial aggregate merged into the table: greatest, least, sum). Such a table needs no
  query of its own: no state store, no second read of its upstream's Delta log, and an
  event reaches it in the same micro-batch as it reaches bronze.

What is not chained keeps its own streaming query; an `avg` or a `stddev` keeps its state in
Spark's state store, as on Databricks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pyspark.sql import DataFrame

from spark_jobs.lakeflow.api import TableSpec
from spark_jobs.lakeflow.loader import Pipeline

OutputMode = Literal["append", "update", "complete"]

_AGGREGATE = re.compile(r"^[\s+:|~-]*Aggregate\b", re.MULTILINE)
_SORT = re.compile(r"^[\s+:|~-]*Sort\b", re.MULTILINE)
# Plan nodes that keep state across micro-batches or need the whole stream (a streaming
# plan prints its nodes with a leading `~`).
_STATEFUL_NODES = re.compile(
    r"^[\s+:|~-]*(Aggregate|Deduplicate\w*|Join|\w*GroupsWithState|TransformWithState\w*|"
    r"Window|GlobalLimit|LocalLimit|Sort|Distinct)\b",
    re.MULTILINE,
)
# How a batch's partial aggregate value combines with the table's: `{c}` is the column.
_COMBINE = {
    "Max": "greatest(target.`{c}`, source.`{c}`)",
    "Min": "least(target.`{c}`, source.`{c}`)",
    "Count": "target.`{c}` + source.`{c}`",
    "Sum": "CASE WHEN target.`{c}` IS NULL THEN source.`{c}` "
    "WHEN source.`{c}` IS NULL THEN target.`{c}` ELSE target.`{c}` + source.`{c}` END",
}


@dataclass(frozen=True)
class WriteMode:
    """How a flow's batches reach its table: rows appended; an aggregate's changed groups
    merged on `keys` (replacing a group's row, or, with `combine`, combining each column's
    value with the table's by its SQL); or the whole result replacing the table."""

    mode: OutputMode
    keys: tuple[str, ...] = ()
    combine: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def write_mode(frame: DataFrame) -> WriteMode:
    """The write a flow's plan needs; Lakeflow decides it the same way, unasked."""
    plan = _analyzed(frame)
    text = plan.toString()
    if not _AGGREGATE.search(text):
        return WriteMode("append")
    if _SORT.search(text):
        return WriteMode("complete")
    keys = _grouping_columns(plan)
    return WriteMode("update", keys) if keys else WriteMode("complete")


def stateless(frame: DataFrame) -> bool:
    """Whether each output row depends on its input row alone."""
    return _STATEFUL_NODES.search(_analyzed(frame).toString()) is None


def partial_merge(frame: DataFrame) -> WriteMode | None:
    """For a grouped aggregate of `max`, `min`, `sum` and `count` over a stateless input, the
    merge that folds one batch's aggregate into the table; None for any other plan."""
    plan = _analyzed(frame)
    write = write_mode(frame)
    if write.mode != "update":
        return None
    found = _aggregate_below(plan)
    if found is None:
        return None
    aggregate, above = found
    if _STATEFUL_NODES.search(aggregate.child().toString()):
        return None
    functions = _aggregate_functions(aggregate)
    # Follow each output column down the projections to the aggregate value it shows.
    sources = {a.exprId().id(): a.exprId().id() for a in _seq(plan.output())}
    for parent in above:
        if _kind(parent) != "Project":
            continue  # a filter or an alias keeps its child's columns
        projected = {}
        for expression in _seq(parent.projectList()):
            inner = expression.child() if _kind(expression) == "Alias" else expression
            if _kind(inner) == "AttributeReference":
                projected[expression.exprId().id()] = inner.exprId().id()
        sources = {out: projected.get(at, -1) for out, at in sources.items()}
    combine = []
    for attribute in _seq(plan.output()):
        name = attribute.name()
        if name in write.keys:
            continue
        function = functions.get(sources.get(attribute.exprId().id(), -1))
        if function not in _COMBINE:
            return None
        combine.append((name, _COMBINE[function].format(c=name)))
    return WriteMode("update", write.keys, tuple(combine))


@dataclass(frozen=True)
class Link:
    """A table computed inside another flow's micro-batch, from the rows of `upstream`."""

    spec: TableSpec
    upstream: str
    write: WriteMode
    schema: Any


def plan_chain(pipeline: Pipeline, root: TableSpec, frame: DataFrame) -> tuple[Link, ...]:
    """The tables the `root` flow computes in its own micro-batches, upstream first (see the
    module docstring). Each table is tried on the streaming plans themselves, so what is
    chained is decided by what the functions compute, not by their names."""
    if write_mode(frame).mode != "append" or not stateless(frame):
        return ()
    links: list[Link] = []
    frames = {root.target: frame}
    pending = [root.target]
    while pending:
        parent = pending.pop(0)
        for child in _readers(pipeline, parent):
            rows = pipeline.call(child, rows={parent: frames[parent]})
            if not pipeline.consumed_rows():
                continue  # it read its source itself
            if stateless(rows):
                links.append(Link(child, parent, WriteMode("append"), rows.schema))
                frames[child.target] = rows
                pending.append(child.target)
            elif not _drops(child) and (merge := partial_merge(rows)) is not None:
                links.append(Link(child, parent, merge, rows.schema))
    return tuple(links)


def _drops(spec: TableSpec) -> bool:
    """Whether a drop rule may remove rows: a dropped partial aggregate would lose its batch's
    share of the group for good (a query of its own drops a group's value only until its
    next update), so such an aggregate keeps its own query."""
    return any(expectation.action == "drop" for expectation in spec.expectations)


def _readers(pipeline: Pipeline, table: str) -> list[TableSpec]:
    """Streaming tables written by one flow whose only upstream is `table`."""
    flows: dict[str, list[TableSpec]] = {}
    for spec in pipeline.specs.values():
        if spec.function is not None and not spec.is_view:
            flows.setdefault(spec.target, []).append(spec)
    return [
        spec
        for name, specs in sorted(flows.items())
        for spec in specs
        if len(specs) == 1
        and not spec.materialized
        and not spec.is_flow
        and not spec.spark_conf  # settings for a query of its own
        and spec.upstream == (table,)
        and name != table
    ]


# -- reading Catalyst's analyzed plan through py4j --------------------------------------


def _analyzed(frame: DataFrame) -> Any:
    return frame._jdf.queryExecution().analyzed()


def _kind(node: Any) -> str:
    name: str = node.getClass().getSimpleName()
    return name


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(index) for index in range(scala_seq.size())]


def _ids(expression: Any) -> set[int]:
    return {attribute.exprId().id() for attribute in _seq(expression.references().toSeq())}


def _derived(expression: Any, keys: set[int]) -> bool:
    """Computed from key columns alone (a constant, referencing nothing, is not a key)."""
    references = _ids(expression)
    return bool(references) and references <= keys


def _aggregate_below(plan: Any) -> tuple[Any, list[Any]] | None:
    """The one Aggregate under a chain of single-input nodes, and the nodes above it (top
    first); None when the plan branches first."""
    above = []
    node = plan
    while _kind(node) != "Aggregate":
        children = _seq(node.children())
        if len(children) != 1:
            return None
        above.append(node)
        node = children[0]
    return node, above


def _grouping_columns(plan: Any) -> tuple[str, ...]:
    """Output columns computed from the aggregate's grouping expressions alone: the keys a
    changed group's row replaces its earlier row by. Empty when the plan is not a chain of
    single-input nodes over one aggregate."""
    found = _aggregate_below(plan)
    if found is None:
        return ()
    node, above = found
    grouped = set().union(*(_ids(e) for e in _seq(node.groupingExpressions())))
    keys = {e.exprId().id() for e in _seq(node.aggregateExpressions()) if _derived(e, grouped)}
    for parent in reversed(above):
        # A projection keeps a key column (it references itself) and derives new ones.
        if _kind(parent) == "Project":
            keys = {e.exprId().id() for e in _seq(parent.projectList()) if _derived(e, keys)}
    return tuple(a.name() for a in _seq(plan.output()) if a.exprId().id() in keys)


def _aggregate_functions(aggregate: Any) -> dict[int, str]:
    """Each aggregate output column's function (`Max`, `Avg`, ...), by column id; columns
    that are not one plain aggregate function (an expression over several, a DISTINCT or a
    FILTER) are left out."""
    found = {}
    for expression in _seq(aggregate.aggregateExpressions()):
        if _kind(expression) != "Alias" or _kind(expression.child()) != "AggregateExpression":
            continue
        call = expression.child()
        if call.isDistinct() or call.filter().isDefined():
            continue
        found[expression.exprId().id()] = _kind(call.aggregateFunction())
    return found
