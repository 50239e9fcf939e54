"""Pipeline settings from spark-pipeline.yml or databricks.yml become one PipelineSettings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from spark_jobs.lakeflow.settings import PipelineSettingsError, read_settings

SOURCES = ("transformations/bronze/raw.py", "transformations/silver.sql", "explorations/a.py")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A pipeline folder holding a few source files and a file that is no source."""
    folder = tmp_path.resolve()
    write(folder, {name: "" for name in SOURCES})
    write(folder, {"transformations/README.md": "", "transformations/.hidden/x.py": ""})
    return folder


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))


def read(path: Path, **options):
    """read_settings without the developer's USER or BUNDLE_VAR_* leaking in."""
    return read_settings(path, **{"environ": {}, **options})


def error(path: Path, **options) -> str:
    """The one-line message read_settings refuses `path` with."""
    with pytest.raises(PipelineSettingsError) as caught:
        read(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def bundle(root: Path, pipeline: str = "", extra: str = "") -> Path:
    """A databricks.yml with a pipeline `etl`, reading transformations/** unless it says."""
    write(root, {"databricks.yml": f"bundle: {{name: lake}}\n{textwrap.dedent(extra)}\n"})
    body = textwrap.dedent(pipeline)
    if "libraries" not in body:
        body += "\nlibraries: [{glob: {include: transformations/**}}]"
    resources = f"resources:\n  pipelines:\n    etl:\n{textwrap.indent(body, '      ')}\n"
    with (root / "databricks.yml").open("a") as file:
        file.write(resources)
    return root / "databricks.yml"


# spark-pipeline.yml


def test_spark_spec_reads_every_py_and_sql_file_below_a_glob_folder(root):
    write(
        root,
        {
            "spark-pipeline.yml": """
                name: sensors
                storage: file:///tmp/checkpoints
                catalog: main
                database: iot
                libraries:
                  - glob: {include: transformations/**}
                configuration: {spark.sql.shuffle.partitions: 4, flag: true, ratio: 0.5}
            """
        },
    )
    settings = read(root)

    assert settings.name == "sensors"
    assert settings.libraries == (
        root / "transformations/bronze/raw.py",
        root / "transformations/silver.sql",
    )
    assert (settings.catalog, settings.schema) == ("main", "iot")
    assert settings.configuration == {
        "spark.sql.shuffle.partitions": "4",
        "flag": "true",
        "ratio": "0.5",
    }
    assert (settings.continuous, settings.target) == (False, None)
    assert (settings.root, settings.source) == (root, root / "spark-pipeline.yml")


def test_spark_spec_takes_schema_for_database_and_file_libraries(root):
    write(
        root,
        {
            "pipeline.yml": """
                name: sensors
                schema: iot
                libraries:
                  - file: {path: explorations/a.py}
                  - glob: {include: transformations/*.sql}
                  - glob: {include: explorations/a.py}
            """
        },
    )
    settings = read(root / "pipeline.yml")

    assert settings.schema == "iot"
    assert settings.libraries == (root / "explorations/a.py", root / "transformations/silver.sql")


def test_spark_spec_refuses_an_unknown_key_and_bundle_options(root):
    write(root, {"spark-pipeline.yml": "name: s\nlibraries: [{glob: {include: x/**}}]\nmode: x\n"})
    spec = root / "spark-pipeline.yml"

    assert error(root).startswith(f"{spec}: unknown key 'mode'; use only name, libraries")
    spec.write_text("name: s\nlibraries: [{glob: {include: transformations/**}}]\n")
    assert error(root, target="dev").startswith(f"{spec}: -t and --var apply to databricks.yml")
    assert error(root, variables={"a": "1"}).startswith(f"{spec}: -t and --var")


def test_a_folder_with_databricks_yml_is_read_as_a_bundle_first(root):
    write(root, {"spark-pipeline.yml": "name: spec\nlibraries: [{glob: {include: x/**}}]\n"})
    bundle(root, "name: from-bundle\nlibraries: [{glob: {include: transformations/**}}]")

    assert read(root).name == "from-bundle"


# databricks.yml


def test_bundle_reads_file_notebook_and_glob_libraries(root):
    write(root, {"notebooks/clean.sql": "", "notebooks/enrich.py": ""})
    bundle(
        root,
        """
        name: sensors etl
        catalog: main
        target: iot
        continuous: true
        clusters: [{label: default, num_workers: 2}]
        photon: true
        libraries:
          - notebook: {path: notebooks/clean}
          - notebook: {path: ./notebooks/enrich.py}
          - file: {path: explorations/a.py}
          - glob: {include: transformations/**}
          - glob: {include: transformations/**}
        """,
    )
    settings = read(root)

    assert settings.name == "sensors etl"
    assert settings.libraries == tuple(
        sorted(root / p for p in (*SOURCES, "notebooks/clean.sql", "notebooks/enrich.py"))
    )
    assert (settings.catalog, settings.schema, settings.continuous) == ("main", "iot", True)
    assert (settings.target, settings.source) == (None, root / "databricks.yml")


def test_bundle_pipeline_without_a_name_is_named_by_its_key(root):
    bundle(root)

    assert read(root).name == "etl"


def test_bundle_configuration_values_become_strings(root):
    bundle(
        root,
        """
        configuration: {a: true, b: 3, c: 1.5, d: text, e: "${bundle.name}"}
        libraries: [{glob: {include: transformations/**}}]
        """,
    )

    assert read(root).configuration == {"a": "true", "b": "3", "c": "1.5", "d": "text", "e": "lake"}


def test_included_files_are_merged_with_paths_relative_to_themselves(root):
    write(
        root,
        {
            "databricks.yml": """
                bundle: {name: lake}
                include: [resources/*.yml, resources/*/*.yml, resources/etl.yml]
            """,
            "resources/etl.yml": """
                variables:
                  schema: {default: iot}
                resources:
                  pipelines:
                    etl:
                      schema: ${var.schema}
                      libraries: [{notebook: {path: ../transformations/silver}}]
            """,
            "resources/extra.yml": """
                resources:
                  pipelines:
                    etl:
                      libraries: [{file: {path: local.py}}]
            """,
            "resources/local.py": "",
        },
    )
    settings = read(root)

    assert settings.schema == "iot"
    assert settings.libraries == (root / "resources/local.py", root / "transformations/silver.sql")
    assert settings.root == root


TARGETS = """
    variables:
      env: {default: none}
    targets:
      dev: {default: true, mode: development, workspace: {host: https://x}}
      prod:
        variables: {env: production}
        resources:
          pipelines:
            etl:
              catalog: prod
              configuration: {level: high}
              libraries: [{file: {path: explorations/a.py}}]
    """
PIPELINE = """
    name: etl ${bundle.target}
    catalog: dev
    configuration: {level: low, env: "${var.env}"}
    libraries: [{glob: {include: transformations/**}}]
    """


def test_target_given_overrides_the_pipeline_deeply(root):
    bundle(root, PIPELINE, TARGETS)
    settings = read(root, target="prod")

    assert settings.target == "prod"
    assert (settings.name, settings.catalog) == ("etl prod", "prod")
    assert settings.configuration == {"level": "high", "env": "production"}
    assert root / "explorations/a.py" in settings.libraries
    assert root / "transformations/silver.sql" in settings.libraries


def test_default_target_is_used_when_none_is_given(root):
    bundle(root, PIPELINE, TARGETS)
    settings = read(root)

    assert (settings.target, settings.name, settings.catalog) == ("dev", "etl dev", "dev")
    assert settings.configuration == {"level": "low", "env": "none"}


def test_the_only_target_is_used_when_none_is_given(root):
    bundle(root, PIPELINE, "variables: {env: none}\ntargets:\n  staging: {}\n")

    assert read(root).target == "staging"


def test_no_target_is_used_when_several_have_no_default(root):
    bundle(root, extra="targets:\n  a: {}\n  b: {}\n")

    assert read(root).target is None


def test_an_unknown_target_is_refused_with_the_known_ones(root):
    file = bundle(root, PIPELINE, TARGETS)

    assert error(root, target="qa") == (
        f"{file}: target 'qa' is not defined; known targets: dev, prod (pass -t dev)"
    )


VARIABLES = """
    variables:
      broker: {description: Kafka, default: from-default}
    targets:
      plain: {}
      dev:
        variables: {broker: from-target}
    """


@pytest.mark.parametrize(
    ("target", "provided", "environ", "variables", "expected"),
    [
        ("plain", {}, {}, {}, "from-default"),
        ("plain", {"broker": "from-iotlake"}, {}, {}, "from-iotlake"),
        ("dev", {"broker": "from-iotlake"}, {}, {}, "from-target"),
        ("dev", {}, {"BUNDLE_VAR_broker": "from-env"}, {}, "from-env"),
        ("dev", {}, {"BUNDLE_VAR_broker": "from-env"}, {"broker": "from-var"}, "from-var"),
    ],
)
def test_variable_precedence_is_var_then_env_then_target_then_iotlake_then_default(
    root, target, provided, environ, variables, expected
):
    bundle(root, 'configuration: {broker: "${var.broker}"}', VARIABLES)
    settings = read(root, target=target, provided=provided, environ=environ, variables=variables)

    assert settings.configuration == {"broker": expected}


def test_short_variables_nested_references_and_the_current_user(root):
    bundle(
        root,
        """
        schema: ${var.schema}
        configuration: {home: "/Users/${workspace.current_user.userName}", flag: "${var.enabled}"}
        libraries: [{glob: {include: transformations/**}}]
        """,
        """
        variables:
          enabled: true
          schema: ${workspace.current_user.short_name}_${var.suffix}
          suffix: {default: 7}
        """,
    )
    settings = read(root, environ={"USER": "ada"})

    assert settings.schema == "ada_7"
    assert settings.configuration == {"home": "/Users/ada@localhost", "flag": "true"}


def test_several_pipelines_are_picked_by_key_or_name(root):
    write(
        root,
        {
            "other/o.py": "",
            "databricks.yml": """
                bundle: {name: lake}
                resources:
                  pipelines:
                    other: {libraries: [{glob: {include: other/**}}]}
                    etl:
                      name: Main ETL
                      libraries: [{glob: {include: transformations/**}}]
            """,
        },
    )

    assert read(root, pipeline="other").libraries == (root / "other/o.py",)
    assert read(root, pipeline="Main ETL").name == "Main ETL"
    assert read(root, pipeline="etl").name == "Main ETL"
    assert error(root).endswith(
        "2 pipelines: other, etl (Main ETL); pick one with --pipeline other"
    )
    assert "pipeline 'x' is not defined; known pipelines: other, etl (Main ETL)" in error(
        root, pipeline="x"
    )


# Errors: `<file>: <what is wrong>; <how to fix it>`


@pytest.mark.parametrize(
    ("pipeline", "extra", "options", "expected"),
    [
        (
            'schema: "${var.missing}"',
            "",
            {},
            "variable 'missing' is not declared; declare it under variables",
        ),
        (
            'schema: "${var.x}"',
            "variables: {x: {description: no default}}",
            {},
            "variable 'x' has no value; give it a default or pass --var x=VALUE",
        ),
        (
            'schema: "${var.x}"',
            "variables: {x: {default: '${var.y}'}, y: {default: '${var.x}'}}",
            {},
            "variable 'x' refers to itself; break the cycle",
        ),
        (
            'schema: "${resources.jobs.j.id}"',
            "",
            {},
            "unknown reference ${resources.jobs.j.id}; use ${var.NAME}",
        ),
        (
            'schema: "${bundle.target}"',
            "",
            {},
            "${bundle.target} is used, but no target is selected; pass -t",
        ),
        (
            "",
            "variables: {a: 1}",
            {"variables": {"b": "2"}},
            "variable 'b' is not declared; declared: a",
        ),
        (
            "libraries: [{glob: {include: nothing/**}}]",
            "",
            {},
            "library glob 'nothing/**' matches no .py or .sql file; fix it",
        ),
        (
            "libraries: [{notebook: {path: missing}}]",
            "",
            {},
            "library notebook 'missing' is not found; point it at one file under",
        ),
        (
            "libraries: [{jar: x.jar}]",
            "",
            {},
            "library {'jar': 'x.jar'} is not supported; use glob, file or notebook",
        ),
        (
            "libraries: [{glob: {include: transformations/**}}]\ningestion_definition: {}",
            "",
            {},
            "pipeline 'etl': iotlake cannot run 'ingestion_definition'; remove it",
        ),
        ("libraries: []", "", {}, "no libraries; add `libraries:"),
        (
            "continuous: sometimes\nlibraries: [{glob: {include: transformations/**}}]",
            "",
            {},
            "continuous is 'sometimes'; set it to true or false",
        ),
        ("", "include: [resources/etl.yml]", {}, "include 'resources/etl.yml' is not found; fix"),
    ],
)
def test_each_refusal_names_the_file_and_the_fix_on_one_line(
    root, pipeline, extra, options, expected
):
    file = bundle(root, pipeline, extra)

    assert error(root, **options).startswith(f"{file}: {expected}")


def test_invalid_yaml_names_the_file_and_the_line(root):
    write(root, {"spark-pipeline.yml": "name: s\nlibraries: [\n  - oops: {\n"})

    message = error(root)

    assert message.startswith(f"{root / 'spark-pipeline.yml'}: invalid YAML at line ")
    assert message.endswith("; fix the YAML syntax")


def test_a_folder_without_settings_is_refused(root):
    assert error(root) == (
        f"{root}: no pipeline settings found; add one of databricks.yml, databricks.yaml,"
        " spark-pipeline.yml, spark-pipeline.yaml, pipeline.yml"
    )
