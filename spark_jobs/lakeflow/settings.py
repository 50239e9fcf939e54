"""A pipeline's settings, read from Spark's `spark-pipeline.yml` or a Databricks Asset Bundle.

A pipeline is a folder of Python and SQL files plus settings. Projects written for Spark
Declarative Pipelines keep theirs in `spark-pipeline.yml`; projects written for Databricks keep
them in a bundle's `databricks.yml`. `read_settings` turns either into one `PipelineSettings`,
so `iotlake pipeline run` treats both alike and needs no Spark to know what it will run.

What a bundle says about the workspace (clusters, channel, photon, permissions, ...) changes
how Databricks deploys a pipeline, not what it computes, so it is read past. What iotlake cannot
honour (jar libraries, managed ingestion) or does not know (a misspelt key) is refused: a
silently dropped setting would make the local run differ from the real one. Every refusal is
one line, `<file>: <what is wrong>; <how to fix it>`, for the CLI to print as it is.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BUNDLE_FILES = ("databricks.yml", "databricks.yaml")
SETTINGS_FILES = (*BUNDLE_FILES, "spark-pipeline.yml", "spark-pipeline.yaml", "pipeline.yml")
SOURCE_SUFFIXES = (".py", ".sql")
SPEC_KEYS = ("name", "libraries", "catalog", "database", "schema", "configuration", "storage")
PIPELINE_KEYS = ("name", "libraries", "catalog", "schema", "target", "configuration", "continuous")
# Deployment, compute and billing settings of a Databricks workspace: read past, never used.
WORKSPACE_KEYS = frozenset(
    {"allow_duplicate_names", "budget_policy_id", "channel", "clusters", "development", "edition"}
    | {"environment", "event_log", "filters", "id", "lifecycle", "notifications", "permissions"}
    | {"photon", "restart_window", "root_path", "run_as", "serverless", "storage", "tags"}
    | {"trigger"}
)
LIBRARY_FIELDS = {"file": "path", "notebook": "path", "glob": "include"}
REFERENCE = re.compile(r"\$\{([^}]*)\}")
ENV_PREFIX = "BUNDLE_VAR_"  # the Databricks CLI reads variable values from these, too


class PipelineSettingsError(ValueError):
    """Settings iotlake cannot run; the message is one line naming the file and the fix."""


@dataclass(frozen=True)
class PipelineSettings:
    """What a pipeline run needs, whichever settings file it came from."""

    name: str
    root: Path
    libraries: tuple[Path, ...]
    catalog: str | None
    schema: str | None
    configuration: dict[str, str]
    continuous: bool
    target: str | None
    source: Path


def _error(file: Path | str, message: str) -> PipelineSettingsError:
    """`<file>: <message>`, where the message says what is wrong, then `;` and the fix."""
    return PipelineSettingsError(" ".join(f"{file}: {message}".splitlines()))


def read_settings(
    path: Path,
    target: str | None = None,
    variables: Mapping[str, str] | None = None,
    provided: Mapping[str, str] | None = None,
    pipeline: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> PipelineSettings:
    """Read the pipeline at `path`: a folder holding a settings file, or the file itself.

    A file with a top-level `bundle` key is a Databricks Asset Bundle, any other a Spark pipeline
    spec. `target`, `variables` and `pipeline` are the user's choices (`-t`, `--var`,
    `--pipeline`) and mean something to a bundle only; `provided` holds values iotlake supplies
    itself (its Kafka address, say), used for bundle variables nothing else sets.
    """
    path = Path(path)
    file = next((path / name for name in SETTINGS_FILES if (path / name).is_file()), path)
    if path.is_dir() and file == path:
        raise _error(path, f"no pipeline settings found; add one of {', '.join(SETTINGS_FILES)}")
    if not file.is_file():
        raise _error(path, "does not exist; pass a pipeline folder or its settings file")
    file = file.resolve()
    doc = _load_yaml(file)
    if "bundle" not in doc and file.name not in BUNDLE_FILES:
        return _read_spec(file, doc, target, variables or {}, pipeline)
    return _read_bundle(file, doc, target, variables or {}, provided or {}, pipeline, environ)


def _load_yaml(file: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(file, f"cannot be read ({exc.strerror}); check its permissions") from None
    except UnicodeDecodeError:
        raise _error(file, "is not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise _error(file, f"invalid YAML{where}: {problem}; fix the YAML syntax") from None
    if not isinstance(doc, dict | None):
        raise _error(file, "is not a mapping of settings; write `key: value` lines at the top")
    return doc or {}


def _read_spec(
    file: Path,
    doc: dict[str, Any],
    target: str | None,
    variables: Mapping[str, str],
    pipeline: str | None,
) -> PipelineSettings:
    """A Spark Declarative Pipelines spec; refuses the keys Spark itself refuses."""
    unknown = [key for key in doc if key not in SPEC_KEYS]
    if unknown:
        raise _error(file, f"unknown key '{unknown[0]}'; use only {', '.join(SPEC_KEYS)}")
    if target or variables:
        raise _error(file, "-t and --var apply to databricks.yml only; drop them here")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise _error(file, "name is not set; add `name: my_pipeline`")
    if pipeline not in (None, name):
        raise _error(file, f"pipeline '{pipeline}' is not defined; this file's is '{name}'")
    if "database" in doc and "schema" in doc:
        raise _error(file, "both database and schema are set; keep one of them")
    return PipelineSettings(
        name=name,
        root=file.parent,
        libraries=_libraries(file, _list(file, doc, "libraries"), str),
        catalog=_optional_text(file, "catalog", doc.get("catalog"), str),
        schema=_optional_text(file, "database", doc.get("database", doc.get("schema")), str),
        configuration=_configuration(file, doc.get("configuration"), str),
        continuous=False,
        target=None,
        source=file,
    )


def _read_bundle(
    file: Path,
    doc: dict[str, Any],
    target: str | None,
    variables: Mapping[str, str],
    provided: Mapping[str, str],
    pipeline: str | None,
    environ: Mapping[str, str],
) -> PipelineSettings:
    """A Databricks Asset Bundle: includes merged, one target applied, references resolved."""
    bundle: dict[str, Any] = {}
    origins: dict[str, Path] = {}  # pipeline key -> the file that first declares it
    for source, part in [(file, doc), *_included(file, doc)]:
        for pipelines in _pipeline_sections(part):
            for key, spec in pipelines.items():
                origins.setdefault(key, source)
                if isinstance(spec, dict) and isinstance(spec.get("libraries"), list):
                    # Paths are relative to the file declaring them: pair them before merging.
                    spec["libraries"] = [(source, entry) for entry in spec["libraries"]]
        bundle = _merge(bundle, part)
    bundle_name = _mapping(file, bundle, "bundle").get("name")
    if not isinstance(bundle_name, str) or not bundle_name:
        raise _error(file, "bundle.name is not set; add `bundle: {name: my_bundle}`")

    targets = _mapping(file, bundle, "targets")
    chosen = _choose_target(file, targets, target)
    overrides = _mapping(file, targets, chosen) if chosen else {}
    resources = _merge(_mapping(file, bundle, "resources"), _mapping(file, overrides, "resources"))
    pipelines = _mapping(file, resources, "pipelines")
    if not pipelines:
        raise _error(file, "no pipeline under resources.pipelines; add one with its libraries")

    declared = _mapping(file, bundle, "variables")
    in_target = _mapping(file, overrides, "variables")
    for name in [*variables, *in_target]:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise _error(file, f"variable '{name}' is not declared; declared: {known}")
    from_env = {
        k.removeprefix(ENV_PREFIX): v for k, v in environ.items() if k.startswith(ENV_PREFIX)
    }
    layers = [variables, from_env, _defaults(in_target), provided, _defaults(declared)]
    values = {n: next((v[n] for v in layers if v.get(n) is not None), None) for n in declared}
    user = environ.get("USER", "iotlake")
    fixed = {"bundle.name": bundle_name, "workspace.current_user.short_name": user}
    fixed["workspace.current_user.userName"] = f"{user}@localhost"
    if chosen:
        fixed["bundle.target"] = chosen
    resolve = _resolver(file, fixed, values)

    names = {}
    for key in pipelines:
        raw = _mapping(file, pipelines, key).get("name", key)
        names[key] = resolve(_text(origins.get(key, file), f"pipeline '{key}' name", raw))
    key = _choose_pipeline(file, names, pipeline)
    spec, origin = _mapping(file, pipelines, key), origins.get(key, file)
    for field in spec:
        if field not in PIPELINE_KEYS and field not in WORKSPACE_KEYS:
            honoured = ", ".join(PIPELINE_KEYS)
            raise _error(
                origin,
                f"pipeline '{key}': iotlake cannot run '{field}'; remove it "
                f"(iotlake honours {honoured} and ignores workspace settings)",
            )
    if "schema" in spec and "target" in spec:
        raise _error(origin, f"pipeline '{key}' sets schema and target; keep schema only")
    continuous = resolve(_text(origin, "continuous", spec.get("continuous", False)))
    if continuous not in ("true", "false"):
        raise _error(origin, f"continuous is '{continuous}'; set it to true or false")
    return PipelineSettings(
        name=names[key],
        root=file.parent,
        libraries=_libraries(origin, _list(origin, spec, "libraries"), resolve),
        catalog=_optional_text(origin, "catalog", spec.get("catalog"), resolve),
        schema=_optional_text(origin, "schema", spec.get("schema", spec.get("target")), resolve),
        configuration=_configuration(origin, spec.get("configuration"), resolve),
        continuous=continuous == "true",
        target=chosen,
        source=file,
    )


def _included(file: Path, doc: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The files `include` names, each once, in glob order.

    As in Databricks, only the root file includes, and a glob may match nothing (templates
    list `resources/*/*.yml` for later) but a plain path must name a file.
    """
    parts, seen = [], set()
    for pattern in map(str, _list(file, doc, "include")):
        matches = sorted(glob.glob(_under(file.parent, pattern), recursive=True))
        if not matches and not glob.has_magic(pattern):
            raise _error(file, f"include '{pattern}' is not found; fix the path or remove it")
        for match in [Path(m).resolve() for m in matches if Path(m).resolve() not in seen]:
            seen.add(match)
            part = _load_yaml(match)
            if "include" in part:
                raise _error(match, f"include is read from {file.name} only; move it there")
            parts.append((match, part))
    return parts


def _pipeline_sections(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A file's `resources.pipelines` mappings: at the top and in each target."""
    targets: dict[str, Any] = doc["targets"] if isinstance(doc.get("targets"), dict) else {}
    sections = [doc, *(t for t in targets.values() if isinstance(t, dict))]
    resources = [s.get("resources") for s in sections]
    found = [r.get("pipelines") for r in resources if isinstance(r, dict)]
    return [p for p in found if isinstance(p, dict)]


def _merge(base: Any, override: Any) -> Any:
    """Databricks' merge: mappings key by key, lists appended, anything else replaced."""
    if override is None:
        return base
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merge(base.get(k), v) for k, v in override.items()}}
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    return override


def _defaults(variables: dict[str, Any]) -> dict[str, Any]:
    """Variable values written long (`x: {default: 1}`) or short (`x: 1`)."""
    return {k: v.get("default") if isinstance(v, dict) else v for k, v in variables.items()}


def _resolver(file: Path, fixed: dict[str, str], values: dict[str, Any]) -> Callable[[str], str]:
    """Substitution of `${...}` as Databricks does it; a reference left unresolved is an error."""

    def resolve(text: str, seen: tuple[str, ...] = ()) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = match.group(1).strip()
            name = ref.removeprefix("var.")
            if ref in fixed:
                return fixed[ref]
            if ref == "bundle.target":
                raise _error(file, "${bundle.target} is used, but no target is selected; pass -t")
            if not ref.startswith("var."):
                raise _error(
                    file,
                    f"unknown reference ${{{ref}}}; use ${{var.NAME}}, "
                    "${bundle.name}, ${bundle.target} or ${workspace.current_user.*}",
                )
            if name not in values:
                raise _error(file, f"variable '{name}' is not declared; declare it under variables")
            if name in seen:
                raise _error(file, f"variable '{name}' refers to itself; break the cycle")
            if values[name] is None:
                raise _error(
                    file,
                    f"variable '{name}' has no value; give it a default or pass "
                    f"--var {name}=VALUE (lookups need a workspace)",
                )
            return resolve(_text(file, f"variable '{name}'", values[name]), (*seen, name))

        return REFERENCE.sub(replace, text)

    return resolve


def _choose_target(file: Path, targets: dict[str, Any], target: str | None) -> str | None:
    """The `-t` target, else the one marked `default: true`, else the only one, else none."""
    defaults = [name for name in targets if _mapping(file, targets, name).get("default") is True]
    if target is not None and target not in targets:
        hint = f" (pass -t {(defaults or list(targets))[0]})" if targets else ""
        known = ", ".join(targets) or "none"
        raise _error(file, f"target '{target}' is not defined; known targets: {known}{hint}")
    if target is None and len(defaults) > 1:
        raise _error(file, f"targets {', '.join(defaults)} all say default: true; keep one")
    if target is None and len(targets) == 1:
        return next(iter(targets))
    return target or next(iter(defaults), None)


def _choose_pipeline(file: Path, names: dict[str, str], pipeline: str | None) -> str:
    """The pipeline asked for by key or name; the only one when none is asked for."""
    listed = ", ".join(key if name == key else f"{key} ({name})" for key, name in names.items())
    if pipeline is None and len(names) == 1:
        return next(iter(names))
    if pipeline is None:
        first = next(iter(names))
        raise _error(file, f"{len(names)} pipelines: {listed}; pick one with --pipeline {first}")
    for key, name in names.items():
        if pipeline in (key, name):
            return key
    raise _error(file, f"pipeline '{pipeline}' is not defined; known pipelines: {listed}")


def _libraries(file: Path, entries: list[Any], resolve: Callable[[str], str]) -> tuple[Path, ...]:
    """Every source file the libraries name, sorted and once each.

    An entry is a library, or for a bundle a (declaring file, library) pair: paths are
    relative to the file that declares them.
    """
    if not entries:
        raise _error(file, "no libraries; add `libraries: [{glob: {include: transformations/**}}]`")
    found: set[Path] = set()
    for entry in entries:
        declared_in, library = entry if isinstance(entry, tuple) else (file, entry)
        found.update(_library(declared_in, library, resolve))
    return tuple(sorted(found))


def _library(file: Path, library: Any, resolve: Callable[[str], str]) -> set[Path]:
    """The files of one `{glob: {include}}`, `{file: {path}}` or `{notebook: {path}}`.

    A glob match that is a folder stands for every .py and .sql file below it, so
    `transformations/**` means them all; a notebook path may omit its extension, as a
    Databricks notebook's does.
    """
    kind = next(iter(library)) if isinstance(library, dict) and len(library) == 1 else None
    if kind not in LIBRARY_FIELDS:
        raise _error(
            file,
            f"library {library!r} is not supported; use glob, file or notebook "
            "(jar, whl and maven libraries need a Databricks cluster)",
        )
    field, body = LIBRARY_FIELDS[kind], library[kind]
    if not isinstance(body, dict) or not isinstance(body.get(field), str):
        raise _error(file, f"library {kind} has no {field}; write `{kind}: {{{field}: ...}}`")
    value, base = resolve(body[field]), file.parent
    if kind == "glob":
        matches = map(Path, glob.glob(_under(base, value), recursive=True))
        files = {f for m in matches for f in ([m] if m.is_file() else _below(m))}
        files = {f.resolve() for f in files if f.suffix in SOURCE_SUFFIXES}
        if not files:
            raise _error(file, f"library glob '{value}' matches no .py or .sql file; fix it")
        return files
    suffixes = [""] if kind == "file" or Path(value).suffix else list(SOURCE_SUFFIXES)
    hits = [base / f"{value}{s}" for s in suffixes if (base / f"{value}{s}").is_file()]
    if len(hits) == 1 and hits[0].suffix in SOURCE_SUFFIXES:
        return {hits[0].resolve()}
    problems = {0: "is not found", 1: "is not a .py or .sql file"}
    problem = problems.get(len(hits), "is ambiguous: both .py and .sql exist")
    raise _error(file, f"library {kind} '{value}' {problem}; point it at one file under {base}")


def _under(folder: Path, pattern: str) -> str:
    """A glob pattern relative to `folder`, whose own name may hold glob characters."""
    return os.path.join(glob.escape(str(folder)), pattern)


def _below(folder: Path) -> list[Path]:
    """Files under a folder, skipping hidden ones as a glob does."""
    return [Path(p) for p in glob.glob(_under(folder, "**"), recursive=True) if Path(p).is_file()]


def _mapping(file: Path, doc: dict[str, Any], key: str) -> dict[str, Any]:
    """`doc[key]` as a mapping: missing or null is empty, anything else is refused."""
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise _error(file, f"{key} is not a mapping; write it as `name: value` lines")
    return value


def _list(file: Path, doc: dict[str, Any], key: str) -> list[Any]:
    """`doc[key]` as a list: missing or null is empty, anything else is refused."""
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise _error(file, f"{key} is not a list; write it as `- ...` items")
    return value


def _text(file: Path, what: str, value: Any) -> str:
    """A YAML scalar as Spark's configuration holds it: true -> "true", 3 -> "3"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or isinstance(value, dict | list):
        raise _error(file, f"{what} is {value!r}; give it a string, number or boolean")
    return str(value)


def _optional_text(file: Path, what: str, value: Any, resolve: Callable[[str], str]) -> str | None:
    return None if value is None else resolve(_text(file, what, value))


def _configuration(file: Path, value: Any, resolve: Callable[[str], str]) -> dict[str, str]:
    """The `configuration` map with every value a string, as `spark.conf` holds it."""
    if not isinstance(value, dict | None):
        raise _error(file, "configuration is not a mapping; write it as `key: value` lines")
    return {str(k): resolve(_text(file, f"'{k}'", v)) for k, v in (value or {}).items()}
