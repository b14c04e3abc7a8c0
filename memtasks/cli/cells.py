"""The ``cells`` command: the registered cells as a table or JSON."""

from __future__ import annotations

import json

import click
from rich.table import Table

from memtasks.cli.common import out


@click.command("cells")
@click.option("--json", "as_json", is_flag=True, help="Print the cell registry as JSON.")
def cells_cmd(as_json: bool) -> None:
    """List the registered cells (built-in, registered and from entry points)."""
    from memtasks.models.registry import cells  # deferred: the cell registry imports torch (keeps start-up fast)

    found = cells()
    if as_json:
        click.echo(json.dumps([{"name": c.name, "source": c.source, "description": c.description}
                               for c in found.values()], indent=2))
        return
    table = Table(title=f"cells ({len(found)})", title_justify="left")
    for col in ("name", "source", "description"):
        table.add_column(col, overflow="fold")
    for c in found.values():
        table.add_row(c.name, c.source, c.description)
    out.print(table)
    out.print("[dim]Any 'package.module:factory' works too; see docs/cells.md.[/]")
