"""The `iotlake` command run in this process, for the service tests.

Not in the package's `__init__`: `tests.services.embedded.stream_driver` runs as a child
process, and importing `tests.conftest` there would drop the IOTLAKE_* variables it reads.
"""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from iotlake.cli import app
from iotlake.config import Settings
from tests.conftest import settings_env


def run_cli(settings: Settings | None, *args: str) -> Result:
    """`iotlake ARGS` against `settings`' stack (or the defaults), output captured."""
    environment = settings_env(settings) if settings is not None else {}
    return CliRunner().invoke(app, list(args), env=environment)
