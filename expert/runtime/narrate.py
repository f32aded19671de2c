"""One consistent voice for every pattern: numbered steps, small tables, figures, a closing proof.

Why: a learner reads many scripts; each should look the same, so the content stands out. Tests
and `expert run --quiet` use the same calls with output switched off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from expert.runtime.report import Check, Figure, RunReport


class Narrator:
    """Prints a pattern's story; `quiet=True` keeps the same calls silent."""

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(quiet=quiet, highlight=False, soft_wrap=False)
        if quiet:
            self.console.quiet = True
        self._step = 0

    @property
    def quiet(self) -> bool:
        return self.console.quiet

    def header(self, title: str, subtitle: str = "") -> None:
        body = f"[bold]{escape(title)}[/bold]" + (f"\n{escape(subtitle)}" if subtitle else "")
        self.console.print(Panel(body, expand=False, border_style="cyan"))

    def step(self, title: str) -> int:
        """Start the next numbered step."""
        self._step += 1
        self.console.print(f"\n[bold cyan]Step {self._step}[/] · [bold]{escape(title)}[/]")
        return self._step

    def say(self, text: str) -> None:
        self.console.print(f"  {escape(text)}")

    def note(self, text: str) -> None:
        """A side remark: what a stand-in maps to in the cloud, why a choice was made."""
        self.console.print(f"  [dim]{escape(text)}[/]")

    def table(
        self,
        rows: Iterable[Mapping[str, Any]] | Any,
        *,
        title: str = "",
        columns: Sequence[str] | None = None,
        max_rows: int = 10,
    ) -> None:
        """A small table from dicts or a pandas DataFrame (first `max_rows` rows)."""
        if self.quiet:
            return
        if hasattr(rows, "to_dict"):
            rows = rows.to_dict(orient="records")
        records = list(rows)
        if not records:
            self.say(f"{title}: (no rows)" if title else "(no rows)")
            return
        cols = list(columns or records[0].keys())
        table = Table(title=title or None, title_justify="left", show_lines=False, pad_edge=False)
        for col in cols:
            table.add_column(str(col), overflow="fold")
        for record in records[:max_rows]:
            table.add_row(*(_cell(record.get(col)) for col in cols))
        if len(records) > max_rows:
            table.caption = f"{len(records) - max_rows} more rows not shown"
        self.console.print(table)

    def figure(self, figure: Figure) -> None:
        how = f" [dim]({escape(figure.how)})[/]" if figure.how else ""
        self.console.print(f"  [magenta]▸[/] {escape(figure.label)}: [bold]{figure.formatted()}[/]{how}")

    def check(self, check: Check) -> None:
        mark = "[green]✓[/]" if check.passed else "[red]✗[/]"
        detail = f" [dim]— {escape(check.detail)}[/]" if check.detail else ""
        self.console.print(f"  {mark} {escape(check.name)}{detail}")

    def cloud_only(self, sql: str, reason: str, executed: bool) -> None:
        label = "[green]executed in the cloud[/]" if executed else "[yellow]cloud-only, not executed[/]"
        first = sql.strip().splitlines()[0] if sql.strip() else ""
        more = " …" if len(sql.strip().splitlines()) > 1 else ""
        self.console.print(f"  [yellow]☁[/] {label}: {escape(first)}{more}")
        if not executed and reason:
            self.console.print(f"    [dim]why: {escape(reason)}[/]")

    def warn(self, text: str) -> None:
        self.console.print(f"  [yellow]![/] {escape(text)}")

    def error(self, message: str, fix: str = "") -> None:
        """Always shown, even in quiet mode: the learner must see why a run failed."""
        console = Console(stderr=True, highlight=False)
        console.print(f"[red bold]error:[/] {escape(message)}")
        if fix:
            console.print(f"[bold]fix:[/] {escape(fix)}")

    def summary(self, report: RunReport) -> None:
        """The closing proof: every invariant checked, the key figures, the cloud-only count."""
        if self.quiet:
            return
        table = Table(title="Verified", title_justify="left", show_header=False, box=None)
        table.add_column("", width=2)
        table.add_column("")
        for check in report.checks:
            table.add_row("[green]✓[/]" if check.passed else "[red]✗[/]", escape(check.name))
        self.console.print()
        self.console.print(table)
        for figure in report.key_figures:
            self.figure(figure)
        if report.cloud_only:
            self.console.print(
                f"  [yellow]☁[/] {len(report.cloud_only)} cloud-only statement(s) recorded, "
                "not executed locally (run with credentials in .env to execute them)"
            )
        status = "[green bold]passed[/]" if report.passed else "[red bold]failed[/]"
        self.console.print(f"\n{escape(report.pattern_id)} {status} in {report.seconds:.1f} s")


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value))
