"""What the registry holds, as values (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What the ingest needs of a device: its key, its vehicle, whether it may still speak."""

    device_id: str
    public_key: bytes
    vehicle_id: UUID | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class DeviceListing:
    device_id: str
    owner_email: str
    vin: str | None
    vehicle_id: UUID | None
    created_at: datetime
    revoked_at: datetime | None

    def to_json(self) -> dict[str, str | None]:
        return {"device_id": self.device_id, "owner": self.owner_email, "vin": self.vin,
                "vehicle_id": str(self.vehicle_id) if self.vehicle_id else None,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


@dataclass(frozen=True, slots=True)
class BrokerPassword:
    """What the database keeps of a device's broker password (migration 0004)."""

    hash_hex: str
    salt: str
