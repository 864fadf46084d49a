"""`motus union|driver|licence|epoch|ledger|rewards ...` and `motus developer topup`: the money
side for union operators, drivers, developers and the network operator. Every command that prints
a table has ``--json``; clocks are read here, at the edge, and passed down."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from connections.database import connect
from connections.errors import ConnectionsError
from protocol.signing import public_key_bytes
from registry.developers import Developer, find_developer
from registry.errors import RegistryError
from registry.identity import check_email, check_vin
from registry.store import driver_by_email, vehicle_by_vin
from rewards import service, store
from rewards.bylaws import (
    Bylaws,
    Purpose,
    StrikeCall,
    bylaws_document,
    bylaws_hash,
    parse_bylaws,
)
from rewards.errors import InvalidBylaws, RewardsError, UnknownRecord
from rewards.knob import SENTENCES, Knob
from rewards.ledger import MONEY, TOKEN_EXPONENT, TOKENS, developer_account, driver_account, operator_account
from rewards.ledger import verify as verify_ledger
from rewards.money import format_minor
from rewards.receipt import verify_receipt
from rewards.settings import RewardsSettings
from rewards.weeks import Week

console = Console()
T = TypeVar("T")

union_app = typer.Typer(help="Data unions: create, show, join, leave, pause, strike.", no_args_is_help=True)
driver_app = typer.Typer(help="What a driver decides: the one knob.", no_args_is_help=True)
licence_app = typer.Typer(help="Licences a union grants to developers.", no_args_is_help=True)
epoch_app = typer.Typer(help="Weekly epochs: issuance, licence charges, payouts.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: verify the chain, statements.", no_args_is_help=True)
rewards_app = typer.Typer(help="Payout proofs and the network's public key.", no_args_is_help=True)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _now() -> datetime:
    return datetime.now(UTC)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def _database(settings: RewardsSettings) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection whose transaction commits when the command succeeds; errors a person can act
    on are printed without a traceback."""
    try:
        with connect(settings) as conn:
            yield conn
    except (ConnectionsError, RewardsError, RegistryError) as exc:
        raise _fail(str(exc)) from exc
    except (psycopg.DataError, psycopg.IntegrityError) as exc:  # a value or a race the database refused
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(f"the database refused it: {first}; nothing was changed") from exc


def _emit(as_json: bool, document: Any, table: Callable[[], Any]) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2, default=str))
    else:
        console.print(table())


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _pairs(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = _table(title, "", "")
    table.show_header = False
    for key, value in rows:
        table.add_row(key, str(value))
    return table


def _vehicle(conn: Any, vin: str) -> tuple[UUID, UUID]:
    found = vehicle_by_vin(conn, check_vin(vin))
    if found is None:
        raise UnknownRecord(f"no vehicle with VIN {vin} (register it with `motus device register`)")
    return found


def _driver(conn: Any, email: str) -> UUID:
    driver = driver_by_email(conn, check_email(email))
    if driver is None:
        raise UnknownRecord(f"no driver with e-mail {email}")
    return driver


def _developer(conn: Any, organisation: str) -> Developer:
    developer = find_developer(conn, organisation)
    if developer is None:
        raise UnknownRecord(f"no developer named {organisation!r} (see `motus developer add`)")
    return developer


def _read_bylaws(path: Path, settings: RewardsSettings) -> Bylaws:
    try:
        return parse_bylaws(path.read_text(encoding="utf-8"), network_fee_bps=settings.network_fee_bps)
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from exc
    except InvalidBylaws as exc:
        raise _fail(str(exc)) from exc


def _done(as_json: bool, message: str, **document: Any) -> None:
    """What a command that changes something prints: a sentence, or (--json) the facts."""
    typer.echo(json.dumps(document, default=str) if as_json else message)


def _money(amount: int) -> str:
    return f"{format_minor(amount)} {MONEY}"


def _tokens(amount: int) -> str:
    return f"{format_minor(amount, TOKEN_EXPONENT)} {TOKENS}"


# -- unions ------------------------------------------------------------------------------------

@union_app.command("create")
def union_create(
    slug: str = typer.Argument(..., help="Short name: lower-case letters, digits and dashes."),
    operator: str = typer.Option(..., help="The operator's e-mail address."),
    bylaws: Path = typer.Option(..., help="The bylaws (TOML; see docs/examples/bylaws.toml)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a union under validated bylaws (every broken rule is named)."""
    settings = RewardsSettings()
    document = _read_bylaws(bylaws, settings)
    with _database(settings) as conn:
        union = store.create_union(conn, slug, check_email(operator), document, _now())
    _emit(as_json, {"id": str(union.id), "slug": slug, "bylaws_sha256": bylaws_hash(document)},
          lambda: f"union {slug} created: {union.id}\nbylaws sha256: {bylaws_hash(document)}")


@union_app.command("adopt")
def union_adopt(slug: str = typer.Argument(...), bylaws: Path = typer.Option(...),
                as_json: bool = JSON_OPTION) -> None:
    """Adopt a new version of the bylaws; it applies from the next epoch (next Monday)."""
    settings = RewardsSettings()
    document = _read_bylaws(bylaws, settings)
    with _database(settings) as conn:
        union = store.union_by_slug(conn, slug)
        version, effective = store.adopt_bylaws(conn, union.id, document, _now())
    _done(as_json, f"union {slug}: bylaws version {version} apply from {effective} (the next epoch)",
          union=slug, version=version, effective_from=effective, sha256=bylaws_hash(document))


@union_app.command("list")
def union_list(as_json: bool = JSON_OPTION) -> None:
    """Every union, with its members."""
    with _database(RewardsSettings()) as conn:
        rows = [(u, store.member_count(conn, u.id)) for u in store.list_unions(conn)]
    table = _table("unions", "union", "operator", "members")
    for u, n in rows:
        table.add_row(u.slug, u.operator_email, str(n))
    _emit(as_json, [{"slug": u.slug, "id": str(u.id), "operator": u.operator_email, "members": n}
                    for u, n in rows], lambda: table)


@union_app.command("show")
def union_show(slug: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """The bylaws in force (members may read them), versions, members, requests, licences."""
    settings = RewardsSettings()
    now = _now()
    with _database(settings) as conn:
        union = store.union_by_slug(conn, slug)
        in_force = store.bylaws_in_force(conn, union.id, now.date())
        versions = store.bylaws_versions(conn, union.id)
        members = store.member_count(conn, union.id)
        pending = store.pending_requests(conn, union.id)
        licences = store.licences_between(conn, date.min, date.max, union_id=union.id)
        strikes = store.strikes_between(conn, now, now.replace(year=now.year + 100))
    document = {
        "union": {"slug": union.slug, "id": str(union.id), "operator": union.operator_email},
        "bylaws_in_force": ({"version": in_force[0], **bylaws_document(in_force[1])} if in_force else None),
        "bylaws_versions": [{"version": v.version, "effective_from": str(v.effective_from),
                             "sha256": v.sha256} for v in versions],
        "members": members, "requests_waiting": len(pending),
        "licences": [{"id": str(lic.id), "purpose": lic.purpose.value, "running": lic.running_at(now)}
                     for lic in licences],
        "strikes": [{"developer": str(s.developer_id) if s.developer_id else "all", "reason": s.reason,
                     "since": s.period.start.isoformat()} for s in strikes if s.union_id == union.id],
    }

    def render() -> Table:
        rows: list[tuple[str, Any]] = [("id", union.id), ("operator", union.operator_email),
                                       ("members", members), ("requests waiting", len(pending))]
        if in_force:
            b = in_force[1]
            rows += [("bylaws", f"version {in_force[0]}: {b.name}"), ("purpose", " ".join(b.purpose.split())),
                     ("members' share", f"at least {b.member_share_bps / 100:g}%"),
                     ("operator fee", f"{b.operator_fee_bps / 100:g}%"),
                     ("privileges", ", ".join(p.value for p in b.privileges)),
                     ("purposes allowed", ", ".join(p.value for p in b.allowed_purposes)),
                     ("purposes refused", ", ".join(p.value for p in b.forbidden_purposes) or "-"),
                     ("minimum price", f"{_money(b.min_price_minor)} per car per 30 days"),
                     ("admission", b.admission.value), ("members' split", b.member_split.value),
                     ("strike called by", b.strike.called_by.value)]
        running = sum(1 for x in licences if x.running_at(now))
        rows += [("licences", f"{running} running, {len(licences)} in all"),
                 ("on strike", "yes" if document["strikes"] else "no")]
        return _pairs(f"union {union.slug}", rows)

    _emit(as_json, document, render)


@union_app.command("join")
def union_join(slug: str = typer.Argument(...),
               vin: str = typer.Option(..., help="The vehicle's VIN."), as_json: bool = JSON_OPTION) -> None:
    """Ask to join with a vehicle (admitted at once where admission is open)."""
    now = _now()
    with _database(RewardsSettings()) as conn:
        union = store.union_by_slug(conn, slug)
        vehicle, _ = _vehicle(conn, vin)
        in_force = store.bylaws_in_force(conn, union.id, now.date())
        admitted = in_force is not None and in_force[1].admission.value == "open"
        store.join(conn, vehicle, union.id, now, admitted=admitted)
    _done(as_json, f"{vin} joined {slug}" if admitted else
          f"{vin} asked to join {slug}; the operator approves with `motus union approve`",
          union=slug, vin=vin, admitted=admitted)


@union_app.command("approve")
def union_approve(slug: str = typer.Argument(...), vin: str = typer.Option(...),
                  as_json: bool = JSON_OPTION) -> None:
    """Admit a vehicle that asked to join (unions that admit by approval)."""
    with _database(RewardsSettings()) as conn:
        union = store.union_by_slug(conn, slug)
        store.approve(conn, _vehicle(conn, vin)[0], union.id, _now())
    _done(as_json, f"{vin} admitted to {slug}", union=slug, vin=vin, admitted=True)


@union_app.command("leave")
def union_leave(vin: str = typer.Option(...), as_json: bool = JSON_OPTION) -> None:
    """Leave the union: licences stop covering the vehicle at once."""
    with _database(RewardsSettings()) as conn:
        union = store.union_by_id(conn, store.leave(conn, _vehicle(conn, vin)[0], _now()))
    _done(as_json, f"{vin} left {union.slug}", union=union.slug, vin=vin, left=True)


@union_app.command("pause")
def union_pause(vin: str = typer.Option(...),
                resume: bool = typer.Option(False, "--resume", help="End the pause."),
                as_json: bool = JSON_OPTION) -> None:
    """Pause (or resume) a vehicle's membership: no licence covers it while paused."""
    with _database(RewardsSettings()) as conn:
        vehicle = _vehicle(conn, vin)[0]
        (store.resume if resume else store.pause)(conn, vehicle, _now())
    _done(as_json, f"{vin} {'resumed' if resume else 'paused'}", vin=vin, paused=not resume)


@union_app.command("strike")
def union_strike(
    slug: str = typer.Argument(...),
    reason: str = typer.Option("", help="Why (shown to members and developers)."),
    developer: str | None = typer.Option(None, help="Strike against one developer only."),
    votes: int | None = typer.Option(None, min=0, help="Member vehicles voting for it (member-vote unions)."),
    end: bool = typer.Option(False, "--end", help="End the strike."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Call (or end) a data strike: the union's licences cover nobody while it lasts."""
    now = _now()
    with _database(RewardsSettings()) as conn:
        union = store.union_by_slug(conn, slug)
        target = _developer(conn, developer).id if developer else None
        if end:
            store.end_strike(conn, union.id, target, now)
            _done(as_json, f"{slug}: strike ended", union=slug, developer=developer, on_strike=False)
            return
        in_force = store.bylaws_in_force(conn, union.id, now.date())
        if in_force is None:
            raise UnknownRecord(f"union {slug} has no bylaws in force")
        rules = in_force[1].strike
        if rules.called_by is StrikeCall.MEMBER_VOTE:
            members = store.member_count(conn, union.id)
            needed = -(-members * (rules.quorum_bps or 0) // 10_000)
            if votes is None or votes < needed:
                raise RewardsError(f"the bylaws call a strike by member vote: {needed} of {members} "
                                   f"member vehicles must vote for it (--votes), {votes or 0} did")
        store.call_strike(conn, union.id, target, rules.called_by.value, votes, reason, now)
    _done(as_json, f"{slug}: on strike{' against ' + developer if developer else ''}",
          union=slug, developer=developer, on_strike=True, reason=reason)


# -- drivers -----------------------------------------------------------------------------------

@driver_app.command("knob")
def driver_knob(
    email: str = typer.Argument(..., help="The driver's e-mail address."),
    level: str | None = typer.Argument(None, help="private, vehicle or location; omit to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Set (or show) the one knob that decides which licences cover your cars."""
    with _database(RewardsSettings()) as conn:
        driver = _driver(conn, email)
        if level is not None:
            try:
                store.set_knob(conn, driver, Knob.parse(level), _now())
            except ValueError as exc:
                raise _fail(str(exc)) from exc
        from rewards.coverage import knob_at

        current = knob_at(store.knob_histories(conn, _now()).get(driver, []), _now())
    table = _table(f"knob of {email}", "", "level", "what it means")
    for k in Knob:
        table.add_row("→" if k is current else "", k.label, SENTENCES[k])
    _emit(as_json, {"driver": email, "level": current.label, "means": SENTENCES[current]}, lambda: table)


# -- developers' money -------------------------------------------------------------------------

def topup(
    organisation: str = typer.Argument(...),
    amount: int = typer.Argument(..., min=1, max=10**15, help="Minor units (cents) paid in."),
    reference: str = typer.Option(..., help="The payment's id: recording it twice changes nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Record money a developer paid in; licence charges are taken from it."""
    with _database(RewardsSettings()) as conn:
        developer = _developer(conn, organisation)
        fresh = service.top_up(conn, developer, amount, reference, _now())
        left = store.balance(conn, developer_account(developer.id), MONEY)
    _done(as_json, f"{organisation}: {'paid in' if fresh else 'already recorded:'} {_money(amount)};"
                   f" balance {_money(left)}",
          developer=organisation, amount_minor=amount, recorded=fresh, balance_minor=left)


# -- licences ----------------------------------------------------------------------------------

def _day(text: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a day (YYYY-MM-DD)") from exc


def _licence_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a licence id") from exc


@licence_app.command("grant")
def licence_grant(
    union: str = typer.Option(...),
    developer: str = typer.Option(..., help="The developer's organisation."),
    purpose: Purpose = typer.Option(...),
    scope: str = typer.Option(..., help="Comma-separated signal names or privilege classes "
                                        "(non-location, location)."),
    days: int = typer.Option(30, min=1, max=3660, help="How long the licence runs."),
    price: int = typer.Option(..., min=0, max=10**12, help="Minor units per covered vehicle per 30 days."),
    starts: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default today."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Grant a licence under the union's bylaws; prints its signed provenance receipt."""
    settings = RewardsSettings()
    now = _now()
    key = service.network_key(settings.network_key_file)
    items = tuple(x.strip() for x in scope.split(",") if x.strip())
    with _database(settings) as conn:
        granted = service.grant(conn, store.union_by_slug(conn, union), _developer(conn, developer),
                                purpose=purpose, scope=items,
                                starts=_day(starts) if starts else now, days=days, price_minor=price,
                                key=key, now=now)
    _emit(as_json, granted.receipt, lambda: _pairs("licence granted", [
        ("id", granted.terms.id), ("covers today", f"{len(granted.covered)} vehicles"),
        ("runs", f"{granted.terms.starts} to {granted.terms.ends}"),
        ("price", f"{_money(price)} per car per 30 days"),
        ("receipt", "signed; see `motus licence receipt`")]))


@licence_app.command("revoke")
def licence_revoke(licence_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Revoke a licence: it covers nobody from now on."""
    with _database(RewardsSettings()) as conn:
        at = store.revoke_licence(conn, _licence_id(licence_id), _now())
    _done(as_json, f"licence {licence_id} revoked at {at:%Y-%m-%d %H:%M:%S} UTC",
          licence=licence_id, revoked_at=at.isoformat())


@licence_app.command("show")
def licence_show(licence_id: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """A licence's terms and the vehicles it covers now."""
    now = _now()
    with _database(RewardsSettings()) as conn:
        terms, _ = store.licence(conn, _licence_id(licence_id))
        covered = service.covered_vehicles(conn, terms, now)
        union = store.union_by_id(conn, terms.union_id)
    document = {"id": str(terms.id), "union": union.slug, "developer_id": str(terms.developer_id),
                "purpose": terms.purpose.value, "scope": list(terms.scope),
                "starts": str(terms.starts), "ends": str(terms.ends), "price_minor": terms.price_minor,
                "revoked_at": terms.revoked_at.isoformat() if terms.revoked_at else None,
                "covered_now": [str(v) for v in covered]}
    _emit(as_json, document, lambda: _pairs(f"licence {terms.id}", [
        ("union", union.slug), ("purpose", terms.purpose.value), ("scope", ", ".join(terms.scope)),
        ("runs", f"{terms.starts} to {terms.ends}"
                 + (f", revoked {terms.revoked_at:%Y-%m-%d}" if terms.revoked_at else "")),
        ("price", f"{_money(terms.price_minor)} per car per 30 days"),
        ("covers now", f"{len(covered)} vehicles")]))


@licence_app.command("receipt")
def licence_receipt(
    licence_id: str | None = typer.Argument(None),
    verify: Path | None = typer.Option(None, help="Check a receipt file against the network's key."),
) -> None:
    """Print a licence's signed provenance receipt, or check one."""
    settings = RewardsSettings()
    try:
        public = public_key_bytes(service.network_key(settings.network_key_file, create=False))
    except RewardsError as exc:
        raise _fail(str(exc)) from exc
    if verify is not None:
        try:
            document = json.loads(verify.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read a receipt from {verify}: {exc}") from exc
        if not isinstance(document, dict):
            raise _fail(f"{verify} holds no receipt (a JSON object)")
        problems = verify_receipt(document, public)
        for problem in problems:
            typer.echo(f"invalid: {problem}")
        if problems:
            raise typer.Exit(1)
        typer.echo("valid: signed by the network, untouched")
        return
    if licence_id is None:
        raise typer.BadParameter("give a licence id, or --verify FILE")
    with _database(settings) as conn:
        _, receipt = store.licence(conn, _licence_id(licence_id))
    typer.echo(json.dumps(receipt, indent=2))


# -- epochs ------------------------------------------------------------------------------------

def _week(text: str) -> Week:
    try:
        return Week.parse(text)
    except RewardsError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _epoch_document(record: store.EpochRecord, written: int | None = None) -> dict[str, Any]:
    doc = {"week": record.week, "closed_at": record.closed_at.isoformat(),
           "payout_root": record.payout_root.hex(), "ledger_rows": [record.first_seq, record.last_seq],
           **record.summary}
    if written is not None:
        doc["written"] = written
    return doc


def _epoch_table(record: store.EpochRecord, written: int | None) -> Table:
    s = record.summary
    rows: list[tuple[str, Any]] = [
        ("closed", f"{record.closed_at:%Y-%m-%d %H:%M} UTC"
                   + ("" if written is None else (f", {written} ledger rows written" if written
                                                  else ", already closed: nothing written"))),
        ("vehicles with proven movement", s["proven_vehicles"]), ("tokens issued", _tokens(s["pool"])),
        ("licences charged", s["licences_charged"]), ("covered vehicle-days", s["vehicle_days"]),
        ("charged to developers", _money(s["charged"])), ("network fees", _money(s["network_fees"])),
        ("operator fees", _money(s["operator_fees"])), ("members' share", _money(s["members_share"])),
        ("drivers paid", s["drivers_paid"]), ("late-data adjustments", s["adjustments"]),
        ("payout root", record.payout_root.hex())]
    return _pairs(f"epoch {record.week}", rows)


@epoch_app.command("close")
def epoch_close(week: str = typer.Option(..., help="ISO week, e.g. 2026-W47 (UTC)."),
                as_json: bool = JSON_OPTION) -> None:
    """Close a week: issuance, licence charges and their split, into the ledger; sign the payout
    root. Closing it again writes nothing."""
    settings = RewardsSettings()
    key = service.network_key(settings.network_key_file)
    with _database(settings) as conn:
        closed = service.close_epoch(conn, _week(week), settings.terms(), key, _now(), settings.adjust_weeks)
    _emit(as_json, _epoch_document(closed.record, closed.written),
          lambda: _epoch_table(closed.record, closed.written))


@epoch_app.command("show")
def epoch_show(week: str = typer.Option(...), as_json: bool = JSON_OPTION) -> None:
    """A closed epoch's figures and, per licence, what was covered, charged and split."""
    with _database(RewardsSettings()) as conn:
        record = store.epoch_record(conn, _week(week))
        if record is None:
            raise UnknownRecord(f"{week} is not closed (`motus epoch close --week {week}`)")
        lines = store.epoch_licence_lines(conn, _week(week))
    table = _table("per licence", "union", "developer", "veh-days", "charged", "members")
    for line in lines:
        table.add_row(line[1], line[2], str(line[5]), format_minor(line[6]), format_minor(line[9]))

    def render() -> Any:
        console.print(_epoch_table(record, None))
        return table if lines else "no licence was charged in this epoch"

    _emit(as_json, {**_epoch_document(record), "licences": [
        {"licence": str(x[0]), "union": x[1], "developer": x[2], "purpose": x[3], "vehicles": x[4],
         "vehicle_days": x[5], "charge": x[6], "network_fee": x[7], "operator_fee": x[8],
         "members_share": x[9]} for x in lines]}, render)


# -- the ledger --------------------------------------------------------------------------------

@ledger_app.command("verify")
def ledger_verify(as_json: bool = JSON_OPTION) -> None:
    """Walk the whole chain: name every changed, removed or inserted row and every transaction
    that does not balance. Exit 1 when anything is wrong."""
    with _database(RewardsSettings()) as conn:
        anchors = [a for r in store.epoch_records(conn) if (a := r.anchor()) is not None]
        rows = 0

        def counted() -> Iterator[Any]:
            nonlocal rows
            for entry in store.entries(conn):
                rows += 1
                yield entry

        problems = verify_ledger(counted(), anchors)
    if as_json:
        typer.echo(json.dumps({"rows": rows, "epochs": len(anchors), "problems": problems}))
    else:
        for problem in problems:
            typer.echo(f"tampered: {problem}")
        if not problems:
            typer.echo(f"ledger verified: {rows} rows, {len(anchors)} epochs, every transaction balances")
    if problems:
        raise typer.Exit(1)


@ledger_app.command("statement")
def ledger_statement(
    driver: str | None = typer.Option(None, help="A driver's e-mail address."),
    developer: str | None = typer.Option(None, help="A developer's organisation."),
    union: str | None = typer.Option(None, help="A union's operator account."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every entry of one account, with running balances per asset."""
    if sum(x is not None for x in (driver, developer, union)) != 1:
        raise typer.BadParameter("give one of --driver, --developer or --union")
    with _database(RewardsSettings()) as conn:
        if driver:
            account, who = driver_account(_driver(conn, driver)), driver
        elif developer:
            account, who = developer_account(_developer(conn, developer).id), developer
        else:
            account, who = operator_account(store.union_by_slug(conn, str(union)).id), f"union {union}"
        rows = list(store.entries(conn, account=account))
    running: dict[str, int] = {}
    lines: list[dict[str, Any]] = []
    for e in rows:
        running[e.asset] = running.get(e.asset, 0) + e.amount
        lines.append({"seq": e.seq, "at": e.at, "kind": e.kind, "epoch": e.settles, "asset": e.asset,
                      "amount": e.amount, "balance": running[e.asset]})
    table = _table(f"statement of {who}", "row", "epoch", "kind", "amount", "balance")
    for x in lines:
        fmt = _tokens if x["asset"] == TOKENS else _money
        table.add_row(str(x["seq"]), str(x["epoch"] or str(x["at"])[:10]), str(x["kind"]),
                      fmt(int(x["amount"])), fmt(int(x["balance"])))
    _emit(as_json, {"account": account, "entries": lines, "balances": running}, lambda: table)


# -- payout proofs -----------------------------------------------------------------------------

@rewards_app.command("proof")
def rewards_proof(
    driver: str = typer.Option(..., help="The driver's e-mail address."),
    epoch: str = typer.Option(..., help="A closed epoch, e.g. 2026-W47."),
    out: Path | None = typer.Option(None, help="Write the proof here (default: print it)."),
) -> None:
    """An inclusion proof of the driver's payout in the epoch's signed Merkle root; check it with
    `python -m rewards.verifier FILE --key <motus rewards key>`."""
    settings = RewardsSettings()
    try:
        public = public_key_bytes(service.network_key(settings.network_key_file, create=False))
    except RewardsError as exc:
        raise _fail(str(exc)) from exc
    with _database(settings) as conn:
        who = _driver(conn, driver)
        proofs = service.payout_proofs(conn, _week(epoch), [who], public)
    if who not in proofs:
        raise _fail(f"{driver} was paid nothing in {epoch}, so there is no payout line to prove")
    text = json.dumps(proofs[who], indent=2)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"proof written to {out}")
    else:
        typer.echo(text)


@rewards_app.command("key")
def rewards_key() -> None:
    """The network's public key (hex), which verifies receipts and payout roots."""
    settings = RewardsSettings()
    typer.echo(public_key_bytes(service.network_key(settings.network_key_file)).hex())


def mount(app: typer.Typer, developer_app: typer.Typer) -> None:
    """Mount the money side's commands on the `motus` command."""
    app.add_typer(union_app, name="union")
    app.add_typer(driver_app, name="driver")
    app.add_typer(licence_app, name="licence")
    app.add_typer(epoch_app, name="epoch")
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(rewards_app, name="rewards")
    developer_app.command("topup")(topup)
