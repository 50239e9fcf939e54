"""The pipelines page: a pipeline's graph in DOT, drawn by `st.graphviz_chart`."""

from __future__ import annotations

import pandas as pd

# Fill and border per status, as the page's legend names them.
STATUS_COLORS = {
    "keeps up": ("#d9f2e3", "#2e8b57"),
    "falling behind": ("#fde2d8", "#d62728"),
    "idle": ("#eeeeee", "#7f7f7f"),
    "not started": ("#ffffff", "#9aa0a6"),
}
SOURCE_COLORS = ("#e8f0fe", "#077a9d")


def _dot_text(text: str) -> str:
    """A DOT string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rate(rows_per_second: float) -> str:
    return f"{rows_per_second:,.1f} rows/s"


def pipeline_dot(graph: list, activity: pd.DataFrame) -> str:
    """The pipeline's graph in DOT, left to right, as the Lakeflow pipeline view draws it.

    `graph` is `pipeline_queries.pipeline_graph`'s list, `activity`
    `pipeline_queries.table_activity`'s frame.
    Each table is labelled with the rows it wrote per second over the window and coloured
    by its status; a source with the rows per second its readers took in (the busiest
    reader's count when several read it). Sources are cylinders, materialized views have
    a double border, temporary views are dashed ellipses; edges run upstream -> downstream.
    """
    by_table = activity.set_index("table") if not activity.empty else pd.DataFrame()
    readers: dict[str, float] = {}
    for dataset in graph:
        if dataset.name not in by_table.index:
            continue
        rate = float(by_table.loc[dataset.name, "rows_in_per_s"])
        for upstream in dataset.upstream:
            readers[upstream] = max(readers.get(upstream, 0.0), rate)
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  graph [bgcolor="transparent", nodesep=0.25, ranksep=0.6];',
        '  node [fontname="Helvetica", fontsize=11, penwidth=1.5];',
        '  edge [color="#5f6368", arrowsize=0.7];',
    ]
    for dataset in graph:
        if dataset.kind == "source":
            fill, border = SOURCE_COLORS
            label = [dataset.name, _rate(readers.get(dataset.name, 0.0))]
            attributes = {"shape": "cylinder", "style": "filled"}
        elif dataset.kind == "view":
            fill, border = "#ffffff", "#5f6368"
            label = [dataset.name, "view"]
            attributes = {"shape": "ellipse", "style": "dashed"}
        else:
            row = by_table.loc[dataset.name] if dataset.name in by_table.index else None
            status = str(row["status"]) if row is not None else "not started"
            fill, border = STATUS_COLORS.get(status, STATUS_COLORS["not started"])
            rate = float(row["rows_out_per_s"]) if row is not None else 0.0
            label = [dataset.name, _rate(rate), status]
            style = "rounded,filled" + (",dashed" if status == "not started" else "")
            attributes = {"shape": "box", "style": style}
            if dataset.kind == "materialized":
                attributes["peripheries"] = "2"
        attributes |= {"fillcolor": fill, "color": border, "tooltip": dataset.name}
        text = "\\n".join(part.replace("\\", "\\\\").replace('"', '\\"') for part in label)
        rendered = ", ".join(f"{key}={_dot_text(value)}" for key, value in attributes.items())
        lines.append(f'  {_dot_text(dataset.name)} [label="{text}", {rendered}];')
    for dataset in graph:
        for upstream in dataset.upstream:
            lines.append(f"  {_dot_text(upstream)} -> {_dot_text(dataset.name)};")
    lines.append("}")
    return "\n".join(lines)
