"""`motus sim fleet`: registered simulated cars publishing their drives, a load for the ingest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from broker_config.admin import BrokerAdmin
from broker_config.errors import BrokerConfigError
from connections.database import connect
from connections.errors import BrokerRefused, ConnectionsError
from registry.errors import RegistryError
from registry.settings import ProvisioningSettings
from simulators.fleet import make_fleet
from simulators.publisher import Publisher, ReceiptTally, publish_paced
from stack.devices import register_cars


def fleet(
    cars: int = typer.Option(10, min=1, max=10_000, help="Cars, each a registered device of its own."),
    rate: float = typer.Option(100.0, min=0.1, help="Events per second, the whole fleet together."),
    seconds: float = typer.Option(60.0, min=1, help="How long to publish."),
    seed: int = typer.Option(1, help="Makes the fleet (keys, VINs, routes) reproducible."),
    settle_s: float = typer.Option(15.0, min=0, help="How long to wait for the network's receipts."),
) -> None:
    """Register CARS simulated cars (MOTUS_* settings, as `motus device register`) and publish
    their drives over MQTT/TLS at RATE events per second: a load for the ingest."""
    settings = ProvisioningSettings()
    fleet_cars = make_fleet(cars, seed=seed, drive_seconds=int(seconds * rate / cars) + 2)
    try:
        with connect(settings) as conn, BrokerAdmin(settings.admin_endpoint()) as admin:
            register_cars(conn, admin, fleet_cars, lambda i: f"fleet-{seed}-{i}@motus.example")
    except (ConnectionsError, BrokerConfigError, RegistryError) as exc:
        typer.echo(f"error: cannot register the fleet: {exc}", err=True)
        raise typer.Exit(1) from exc
    endpoint = settings.device_endpoint()
    publisher = Publisher(lambda car: endpoint.model_copy(
        update={"username": car.device_id, "password": car.mqtt_password}), tally=ReceiptTally())
    try:
        run = publish_paced(publisher, fleet_cars, events_per_s=rate, seconds=seconds,
                            start=datetime.now(UTC) - timedelta(seconds=seconds))
        settled, total = publisher.wait_settled(settle_s)
    except (BrokerRefused, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        publisher.close()
    typer.echo(f"published {run.published} events from {cars} cars in {run.seconds:.1f} s "
               f"({run.published / run.seconds:.0f}/s; at most {run.max_lag_s:.2f} s behind schedule)")
    typer.echo(f"the network's receipts settled {settled} of {total} events")
    if settled < total:
        typer.echo(f"{total - settled} events were not confirmed stored within {settle_s:g} s. Is "
                   "`motus ingest run` running? The broker keeps nothing for an ingest that has never "
                   "subscribed, and simulated cars have no spool: start the ingest first (the in-car "
                   "agent keeps every event until its receipt and sends it again).", err=True)
        raise typer.Exit(3)
