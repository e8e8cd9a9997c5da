"""``python -m migctl`` runs the CLI."""

from migctl.cli.main import run

run()
