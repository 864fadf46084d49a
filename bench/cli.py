"""`motus bench ...`."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks; each prints its figures, the last line one JSON object.",
                  no_args_is_help=True)


@app.command()
def agent(
    seconds: float = typer.Option(20.0, min=5, help="How long to sample the polling agent."),
    drain_events: int = typer.Option(5000, min=500, help="Events (20 readings each) to drain."),
    spool_hours: float = typer.Option(6.0, min=0.5, max=168,
                                      help="Hours offline to write, scaled to a week."),
) -> None:
    """The in-car agent: memory and CPU at 20 signals x 5 Hz, spool size for a week offline,
    and how fast a full spool drains to the local broker."""
    from bench.agent import main

    main(seconds, drain_events, spool_hours)
