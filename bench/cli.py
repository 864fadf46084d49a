"""`motus bench ...`."""

from __future__ import annotations

from pathlib import Path

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


@app.command()
def ingest(
    seconds: float = typer.Option(10.0, min=1, help="Events for this long at the goal rate."),
    workers: int = typer.Option(3, min=1, max=64, help="Ingest worker processes."),
    naive_events: int = typer.Option(2000, min=100, help="Events for the naive consumer."),
    timescaledb: bool = typer.Option(False, "--timescaledb",
                                     help="Also measure the TimescaleDB path, beside the plain one."),
) -> None:
    """The ingest: signals/s end to end against the binary COPY ceiling and a naive consumer,
    p99 publish-to-commit at half the rate reached, nothing lost or duplicated."""
    from bench.ingest import main

    main(seconds, workers, naive_events, timescaledb)


@app.command()
def receipts(
    devices: int = typer.Option(1000, min=1, max=50_000,
                                help="Receipts a batch (its devices: about one an event in a large fleet)."),
    batches: int = typer.Option(20, min=3, help="Batches for each of the two ways, in turn."),
) -> None:
    """Publishing the ingest's receipts: CPU per receipt and time per batch, publish_many beside
    paho's publish one by one."""
    from bench.receipts import main

    main(devices, batches)


@app.command()
def faults(
    cars: int = typer.Option(50, min=1, max=500, help="Agents (each its own spool and broker identity)."),
    case: list[str] = typer.Option(None, help="Run only these cases (repeat); default: all of them."),
    ingest_down_s: float = typer.Option(120.0, min=1, help="How long the ingest stays away."),
    reference: bool = typer.Option(True, help="Also run each case with the PUBACK-only agent."),
) -> None:
    """Readings measured against readings stored while the broker is killed, restarted or loses
    its persistence file, and while the ingest is away or not started yet; beside the agent that
    forgets events at the broker's acknowledgement."""
    from bench.faults import CASES, main

    unknown = sorted(set(case or ()) - set(CASES))
    if unknown:
        raise typer.BadParameter(f"unknown case {', '.join(unknown)}; cases: {', '.join(CASES)}",
                                 param_hint="--case")
    main(cars, list(case or CASES), ingest_down_s, reference)


@app.command()
def rewards(
    vehicles: int = typer.Option(100_000, min=100, help="Vehicles in the synthetic network."),
    proofs: int = typer.Option(200, min=1, help="Payout proofs to sample and verify."),
    seed: int = typer.Option(4747, help="Seed of the synthetic network."),
    profile: Path | None = typer.Option(None, help="Profile the first close (cProfile stats to this file; "
                                                   "the top functions are printed)."),
) -> None:
    """Closing a weekly epoch over a synthetic network: seconds for the first close, the same
    result twice, money and tokens conserved, the ledger and sampled payout proofs verified."""
    from bench.rewards import main

    main(vehicles, proofs, seed, profile)
