"""One consistent voice for every pattern: numbered steps, small tables, figures, a closing proof.

Why: a learner reads many scripts; each should look the same, so the content stands out. Tests
and `expert run --quiet` use the same calls with output switched off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from expert.runtime.report import Check, Figure, PlanEntry, RunReport


class Narrator:
    """Prints a pattern's story; `quiet=True` keeps the same calls silent."""

    def __init__(self, *, quiet: bool = False, brief: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(quiet=quiet, highlight=False, soft_wrap=False)
        if quiet:
            self.console.quiet = True
        self.brief = brief
        """One line per cloud step instead of its whole statement or payload."""
        self._step = 0
        self._stand_ins: set[str] = set()

    @property
    def quiet(self) -> bool:
        return self.console.quiet

    def header(self, title: str, subtitle: str = "", why: str = "") -> None:
        """The run's banner: the pattern, the engines it runs on, and why the pattern matters."""
        body = f"[bold]{escape(title)}[/bold]" + (f"\n{escape(subtitle)}" if subtitle else "")
        if why:
            body += f"\n\n{escape(why)}"
        self.console.print(Panel(body, expand=False, border_style="cyan"))

    def step(self, title: str, why: str = "") -> int:
        """Start the next numbered step; `why` is the one line that says what the step is for."""
        self._step += 1
        self.console.print(f"\n[bold cyan]Step {self._step}[/] · [bold]{escape(title)}[/]")
        if why:
            self.console.print(f"  [italic]why: {escape(why)}[/]")
        return self._step

    def stand_in(self, feature: str, how: str) -> bool:
        """Say, once per feature, that a local twin runs in place of a cloud feature."""
        if feature in self._stand_ins:
            return False
        self._stand_ins.add(feature)
        self.console.print(f"  [blue]⇄ local stand-in for {escape(feature)}:[/] {escape(how)}")
        return True

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

    def cloud_step(self, entry: PlanEntry) -> None:
        """A step that runs on a real service: the whole statement or payload (one line with `brief`)."""
        label = "[green]executed in the cloud[/]" if entry.executed else "[yellow]cloud-only, not executed[/]"
        where = f"{entry.service} {entry.kind}".strip()
        lines = entry.text.strip().splitlines()
        if self.brief or len(lines) <= 1:
            more = f" … ({len(lines)} lines)" if len(lines) > 1 else ""
            self.console.print(f"  [yellow]☁[/] {label} ({escape(where)}): {escape(entry.first_line)}{more}")
        else:
            self.console.print(f"  [yellow]☁[/] {label} ({escape(where)}):")
            self.console.print(
                Padding(Syntax(entry.text.strip(), entry.language, theme="ansi_dark", word_wrap=True), (0, 0, 0, 4))
            )
        if entry.purpose and not self.brief:
            self.console.print(f"    [dim]for: {escape(entry.purpose)}[/]")
        if not entry.executed and entry.reason:
            self.console.print(f"    [dim]not run here: {escape(entry.reason)}[/]")

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
        if report.step_seconds:
            times = Table(title="Wall time per step", title_justify="left", show_header=False, box=None)
            times.add_column("", justify="right")
            times.add_column("")
            times.add_column("", justify="right")
            for number, (title, seconds) in enumerate(report.step_seconds, start=1):
                times.add_row(str(number), escape(title), f"{seconds:.1f} s")
            self.console.print(times)
        for figure in report.key_figures:
            self.figure(figure)
        if report.cloud_only:
            self.console.print(
                f"  [yellow]☁[/] {len(report.cloud_only)} cloud-only step(s) shown, not executed here "
                "(saved with the rest of the cloud plan in the workdir: cloud-plan.md, and cloud-plan.sql "
                "for Snowflake; run with credentials in .env to execute them)"
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
