"""Domain errors. Each has a stable `code` (the API's problem type, the CLI's message prefix) and a
message safe to show: never a secret, never a value that could be one."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain-error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not-found"
    status = 404


class InvalidInput(DomainError):
    code = "invalid-input"
    status = 422


class InvalidMac(InvalidInput):
    code = "invalid-mac"


class UnknownModel(InvalidInput):
    code = "unknown-model"


class Conflict(DomainError):
    code = "conflict"
    status = 409


class DeviceExists(Conflict):
    code = "device-exists"


class LineExists(Conflict):
    code = "line-exists"


class LineHasPhone(Conflict):
    code = "line-has-phone"


class SlotTaken(Conflict):
    code = "slot-taken"


class NoFreeSlot(Conflict):
    code = "no-free-slot"


class WrongAccount(Conflict):
    code = "wrong-account"


class DeviceHasNoAccount(Conflict):
    code = "device-has-no-account"


# -- orders, shipping and returns -----------------------------------------------------------


class ContractNotAccepted(InvalidInput):
    code = "contract-not-accepted"


class NotOrderable(InvalidInput):
    code = "not-orderable"


class TooFewSlots(InvalidInput):
    code = "too-few-slots"


class UnknownCarrier(InvalidInput):
    code = "unknown-carrier"


class UnknownRelayPoint(InvalidInput):
    code = "unknown-relay-point"


class InvalidAddress(InvalidInput):
    code = "invalid-address"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency-key-reused"


class UnknownPlace(NotFound):
    code = "unknown-place"


class LineHasNoPhone(Conflict):
    code = "line-has-no-phone"


class OrderPending(Conflict):
    code = "order-pending"


class OrderNotOpen(Conflict):
    code = "order-not-open"


class ModelMismatch(Conflict):
    code = "model-mismatch"


class DeviceNotReturnable(Conflict):
    code = "device-not-returnable"


class ReturnNotOpen(Conflict):
    code = "return-not-open"


class DeviceLeaving(Conflict):
    """A phone whose return is asked for, or which came back: it gets no new line."""

    code = "device-leaving"


class FilesRefused(Conflict):
    """The change would give a device files its vendor's format cannot carry (a template's
    `refuse(...)`, e.g. a double quote in a Gigaset N510 password): refused before anything is
    written. The message names the device, the slot and why, never the value."""

    code = "files-refused"
