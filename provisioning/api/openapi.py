"""The OpenAPI 3.1 document of /api/v1, checked in the tests against the real responses
(openapi-spec-validator for the document, schemathesis for the live server)."""

from __future__ import annotations

from typing import Any

from provisioning.db.models import DEVICE_STATES

JSON = "application/json"
PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": False,
    }


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _page(item: str) -> dict[str, Any]:
    return _obj(
        ["items", "total", "limit", "offset"],
        items={"type": "array", "items": _ref(item)},
        total={"type": "integer", "minimum": 0},
        limit={"type": "integer"},
        offset={"type": "integer"},
    )


ID = {"type": "integer", "minimum": 1}
MAC = {"type": "string", "minLength": 1, "maxLength": 64}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "field": {"type": "string"},
            "request_id": {
                "type": "string",
                "description": "on an unexpected error (500): the id to quote, as in X-Request-Id",
            },
        },
    },
    "Address": _obj(
        ["street", "postcode", "town", "country"],
        street={"type": "string"},
        postcode={"type": "string"},
        town={"type": "string"},
        country={"type": "string"},
    ),
    "Account": _obj(
        ["id", "name", "address", "timezone", "language"],
        id=ID,
        name={"type": "string"},
        address=_ref("Address"),
        timezone={"type": "string"},
        language={"type": "string"},
    ),
    "AccountCreate": _obj(
        ["name"],
        name={"type": "string"},
        address={"type": "string", "description": "street, postcode town"},
        timezone={"type": "string"},
        language={"type": "string"},
    ),
    "Line": _obj(
        [
            "id",
            "account_id",
            "number",
            "username",
            "auth_username",
            "display_name",
            "registrar",
            "transport",
            "device",
            "slot",
        ],
        id=ID,
        account_id=ID,
        number={"type": "string"},
        username={"type": "string"},
        auth_username=_nullable("string"),
        display_name={"type": "string"},
        registrar={"type": "string"},
        transport={"enum": ["udp", "tcp", "tls"]},
        device=_nullable("string"),
        slot=_nullable("integer"),
    ),
    "LineCreate": _obj(
        ["account_id", "number", "password"],
        account_id=ID,
        number={"type": "string"},
        password={"type": "string", "writeOnly": True},
        username={"type": "string"},
        auth_username={"type": "string"},
        display_name={"type": "string"},
        registrar={"type": "string"},
        transport={"enum": ["udp", "tcp", "tls"]},
    ),
    "LinePatch": _obj(
        [],
        display_name={"type": "string"},
        password={"type": "string", "writeOnly": True},
    ),
    "Slot": _obj(["slot", "line_id", "number"], slot=ID, line_id=ID, number={"type": "string"}),
    "LastSeen": _obj(
        ["at", "ip", "user_agent", "firmware", "revision_served"],
        at=_nullable("string", format="date-time"),
        ip=_nullable("string"),
        user_agent=_nullable("string"),
        firmware=_nullable("string"),
        revision_served=_nullable("integer"),
    ),
    "Device": _obj(
        [
            "mac",
            "model",
            "account_id",
            "state",
            "config_revision",
            "current_revision",
            "slots",
            "last_seen",
            "files",
        ],
        mac={"type": "string", "pattern": "^[0-9a-f]{12}$"},
        model={"type": "string"},
        account_id=_nullable("integer"),
        state={"enum": list(DEVICE_STATES)},
        config_revision={"type": "integer"},
        current_revision={"type": "integer"},
        slots={"type": "array", "items": _ref("Slot")},
        last_seen=_ref("LastSeen"),
        files={"type": "array", "items": {"type": "string"}},
    ),
    "DeviceCreate": _obj(["mac", "model"], mac=MAC, model={"type": "string"}, account_id=ID),
    "Assignment": _obj(["mac", "line_id", "slot"], mac={"type": "string"}, line_id=ID, slot=ID),
    "AssignmentCreate": _obj(["line_id"], line_id=ID, slot=ID),
    "ConfigPreview": _obj(
        ["mac", "revision", "masked", "files"],
        mac={"type": "string"},
        revision={"type": "integer"},
        masked={"type": "boolean"},
        files={"type": "object", "additionalProperties": {"type": "string"}},
    ),
    "Model": _obj(
        ["id", "vendor", "family", "label", "slots", "orderable", "price_cents"],
        id={"type": "string"},
        vendor={"type": "string"},
        family={"type": "string"},
        label={"type": "string"},
        slots=ID,
        orderable={"type": "boolean"},
        price_cents=_nullable("integer"),
    ),
    "UnknownDevice": _obj(
        [
            "mac",
            "family",
            "model_guess",
            "first_seen",
            "last_seen",
            "ip",
            "user_agent",
            "file",
            "requests",
        ],
        mac={"type": "string"},
        family={"type": "string"},
        model_guess=_nullable("string"),
        first_seen={"type": "string", "format": "date-time"},
        last_seen={"type": "string", "format": "date-time"},
        ip={"type": "string"},
        user_agent={"type": "string"},
        file={"type": "string"},
        requests={"type": "integer"},
    ),
    "AuditEvent": _obj(
        [
            "id",
            "at",
            "actor",
            "ip",
            "action",
            "object",
            "account_id",
            "device",
            "before",
            "after",
        ],
        id=ID,
        at={"type": "string", "format": "date-time"},
        actor={"type": "string"},
        ip=_nullable("string"),
        action={"type": "string"},
        object=_obj(["type", "id"], type={"type": "string"}, id={"type": "string"}),
        account_id=_nullable("integer"),
        device=_nullable("string"),
        before=_nullable("object"),
        after=_nullable("object"),
    ),
    "AccountPage": _page("Account"),
    "LinePage": _page("Line"),
    "DevicePage": _page("Device"),
    "ModelList": _obj(["items"], items={"type": "array", "items": _ref("Model")}),
    "UnknownDeviceList": _obj(["items"], items={"type": "array", "items": _ref("UnknownDevice")}),
    "AuditPage": _obj(
        ["items", "limit", "offset"],
        items={"type": "array", "items": _ref("AuditEvent")},
        limit={"type": "integer"},
        offset={"type": "integer"},
    ),
}
SCHEMAS.update(
    {
        "Candidate": _obj(
            ["mac", "model", "label", "free_slots", "public_ip", "last_seen", "same_network"],
            mac={"type": "string"},
            model={"type": "string"},
            label={"type": "string"},
            free_slots={"type": "array", "items": ID},
            public_ip=_nullable("string"),
            last_seen=_nullable("string", format="date-time"),
            same_network={"type": "boolean"},
        ),
        "CompatibleDevices": _obj(
            ["line_id", "items"], line_id=ID, items={"type": "array", "items": _ref("Candidate")}
        ),
        "AssociationCreate": _obj(["line_id", "mac"], line_id=ID, mac=MAC),
        "Association": _obj(
            [
                "id", "line_id", "mac", "slot", "status", "created_at", "deadline",
                "notified_at", "applied_at", "seconds_to_apply", "target_revision",
                "last_result",
            ],
            id=ID,
            line_id=ID,
            mac={"type": "string"},
            slot=ID,
            status={"enum": ["pending", "notified", "applied", "overdue"]},
            created_at={"type": "string", "format": "date-time"},
            deadline={"type": "string", "format": "date-time"},
            notified_at=_nullable("string", format="date-time"),
            applied_at=_nullable("string", format="date-time"),
            seconds_to_apply=_nullable("number"),
            target_revision={"type": "integer"},
            last_result=_nullable("string"),
        ),
        "PushOverview": _obj(
            ["counts", "overdue"],
            counts={"type": "object", "additionalProperties": {"type": "integer"}},
            overdue={
                "type": "array",
                "items": _obj(
                    [
                        "id", "device_id", "target_revision", "reason", "deadline",
                        "last_result", "attempts",
                    ],
                    id=ID,
                    device_id=ID,
                    target_revision={"type": "integer"},
                    reason={"type": "string"},
                    deadline={"type": "string", "format": "date-time"},
                    last_result=_nullable("string"),
                    attempts={"type": "integer"},
                ),
            },
        ),
    }
)  # fmt: skip
DATE_TIME = {"type": "string", "format": "date-time"}
SCHEMAS.update(
    {
        "Ban": _obj(
            ["source", "kind", "until", "misses", "since"],
            source={"type": "string"},
            kind={"enum": ["address", "network"]},
            until=DATE_TIME,
            misses={"type": "integer"},
            since=DATE_TIME,
        ),
        "BanList": _obj(["items"], items={"type": "array", "items": _ref("Ban")}),
        "Policy": _obj(
            ["account_id", "proofs", "binding", "first_contact_days", "default"],
            account_id=_nullable("integer"),
            proofs={"type": "string"},
            binding={"enum": ["off", "address", "network"]},
            first_contact_days=_nullable("integer"),
            default={"type": "boolean"},
        ),
        "PolicySet": _obj(
            ["proofs"],
            proofs={
                "type": "string",
                "description": "token, digest, certificate (joined with +), any or any-two",
            },
            binding={"enum": ["off", "address", "network"]},
            first_contact_days={"type": "integer", "minimum": 1, "maximum": 3650},
        ),
        "Binding": _obj(
            [
                "bound_to",
                "bound_at",
                "window_from",
                "refused_at",
                "refused_from",
                "refused_reason",
                "refusals",
            ],
            bound_to=_nullable("string"),
            bound_at=_nullable("string", format="date-time"),
            window_from=_nullable("string", format="date-time"),
            refused_at=_nullable("string", format="date-time"),
            refused_from=_nullable("string"),
            refused_reason=_nullable("string"),
            refusals={"type": "integer"},
        ),
        "Credential": _obj(
            ["kind", "username", "created_at", "valid_until"],
            kind={"enum": ["token", "digest"]},
            username=_nullable("string"),
            created_at=DATE_TIME,
            valid_until=_nullable("string", format="date-time"),
        ),
        "DeviceSecurity": _obj(
            ["mac", "policy", "binding", "credentials"],
            mac={"type": "string"},
            policy=_ref("Policy"),
            binding=_ref("Binding"),
            credentials={"type": "array", "items": _ref("Credential")},
        ),
        "CredentialCreate": _obj(
            ["kind"],
            kind={"enum": ["token", "digest"]},
            overlap={
                "type": "integer",
                "minimum": 0,
                "maximum": 31_536_000,
                "description": "seconds the previous credential stays valid",
            },
        ),
        "CredentialRotated": _obj(
            ["mac", "kind", "previous_valid_until"],
            mac={"type": "string"},
            kind={"enum": ["token", "digest"]},
            previous_valid_until=_nullable("string", format="date-time"),
            url={"type": "string"},
            username={"type": "string"},
        ),
    }
)
SCHEMAS["DeviceCreated"] = {
    **SCHEMAS["Device"],
    "required": [*SCHEMAS["Device"]["required"], "url"],
    "properties": {**SCHEMAS["Device"]["properties"], "url": {"type": "string"}},
}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        param["description"] = description
    return param


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}),
]


def _op(
    summary: str,
    status: int,
    schema: str | None,
    *,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "default": {
            "description": "a problem (RFC 9457)",
            "content": {PROBLEM: {"schema": _ref("Problem")}},
        }
    }
    if schema is None:
        responses[str(status)] = {"description": "done"}
    else:
        responses[str(status)] = {
            "description": "success",
            "content": {JSON: {"schema": _ref(schema)}},
        }
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": _ref(body)}},
        }
    return operation


def openapi_document() -> dict[str, Any]:
    from provisioning.api.openapi_imports import IMPORT_SCHEMAS, claim_paths, import_paths
    from provisioning.api.openapi_orders import ORDER_SCHEMAS, order_paths

    account = [_path("account_id", ID)]
    line = [_path("line_id", ID)]
    mac = [_path("mac", MAC)]
    filters = [_query("account", ID)]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Plug & Phone provisioning API",
            "version": "1",
            "description": (
                "Operators see every account; a customer token sees one account, and another "
                "account's objects answer like missing ones (404)."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": {**SCHEMAS, **ORDER_SCHEMAS, **IMPORT_SCHEMAS},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/catalog/models": {"get": _op("List the catalog's models", 200, "ModelList")},
            "/accounts": {
                "get": _op("List accounts", 200, "AccountPage", params=PAGING),
                "post": _op("Create an account (operator)", 201, "Account", body="AccountCreate"),
            },
            "/accounts/{account_id}": {
                "get": _op("Show an account", 200, "Account", params=account)
            },
            "/lines": {
                "get": _op("List lines", 200, "LinePage", params=[*PAGING, *filters]),
                "post": _op("Create a line (operator)", 201, "Line", body="LineCreate"),
            },
            "/lines/{line_id}": {
                "get": _op("Show a line", 200, "Line", params=line),
                "patch": _op(
                    "Change a line's display name or password",
                    200,
                    "Line",
                    params=line,
                    body="LinePatch",
                ),
            },
            "/devices": {
                "get": _op(
                    "List devices",
                    200,
                    "DevicePage",
                    params=[
                        *PAGING,
                        *filters,
                        _query("model", {"type": "string"}),
                        _query("state", {"enum": list(DEVICE_STATES)}),
                        _query("seen_since", {"type": "string", "format": "date-time"}),
                    ],
                ),
                "post": _op(
                    "Register a device (operator); the answer carries its provisioning URL",
                    201,
                    "DeviceCreated",
                    body="DeviceCreate",
                ),
            },
            "/devices/unknown": {
                "get": _op(
                    "Recent unknown devices (operator)",
                    200,
                    "UnknownDeviceList",
                    params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})],
                )
            },
            "/devices/{mac}": {"get": _op("Show a device", 200, "Device", params=mac)},
            "/devices/{mac}/lines": {
                "post": _op(
                    "Put a line in a slot of the device",
                    201,
                    "Assignment",
                    params=mac,
                    body="AssignmentCreate",
                )
            },
            "/devices/{mac}/lines/{line_id}": {
                "delete": _op("Take a line off the device", 204, None, params=[*mac, *line])
            },
            "/devices/{mac}/config": {
                "get": _op(
                    "Preview the device's files (secrets masked unless revealed with a reason)",
                    200,
                    "ConfigPreview",
                    params=[
                        *mac,
                        _query("reveal", {"enum": ["true", "false"]}),
                        _query("reason", {"type": "string", "maxLength": 200}),
                    ],
                )
            },
            "/lines/{line_id}/compatible-devices": {
                "get": _op(
                    "Phones of the line's account that can take it (same public IP first)",
                    200,
                    "CompatibleDevices",
                    params=line,
                )
            },
            "/associations": {
                "post": _op(
                    "Put a line on a phone of the account; followed until the phone applied it",
                    202,
                    "Association",
                    body="AssociationCreate",
                )
            },
            "/associations/{association_id}": {
                "get": _op(
                    "An association's status: pending, notified, applied or overdue",
                    200,
                    "Association",
                    params=[_path("association_id", ID)],
                )
            },
            "/pushes": {"get": _op("Pushes by state and the overdue ones", 200, "PushOverview")},
            "/security/bans": {
                "get": _op(
                    "Active bans of sources that missed too often (operator)", 200, "BanList"
                ),
                "delete": _op(
                    "Lift the ban of a source (operator)",
                    204,
                    None,
                    params=[
                        {
                            "name": "source",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 64},
                            "description": "IP address or network (CIDR)",
                        }
                    ],
                ),
            },
            "/security/metrics": {
                "get": {
                    "summary": "Scanner-defence counters of this instance, Prometheus text "
                    "format (operator)",
                    "responses": {
                        "200": {
                            "description": "success",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "default": {
                            "description": "a problem (RFC 9457)",
                            "content": {PROBLEM: {"schema": _ref("Problem")}},
                        },
                    },
                }
            },
            "/devices/{mac}/security": {
                "get": _op(
                    "The device's policy, binding and credentials (operator)",
                    200,
                    "DeviceSecurity",
                    params=mac,
                )
            },
            "/devices/{mac}/unlock": {
                "post": _op(
                    "Forget where the device is bound and restart its first-contact window "
                    "(operator)",
                    200,
                    "DeviceSecurity",
                    params=mac,
                )
            },
            "/devices/{mac}/credentials": {
                "post": _op(
                    "Renew the device's token or digest password; the previous one stays valid "
                    "for the overlap (operator)",
                    201,
                    "CredentialRotated",
                    params=mac,
                    body="CredentialCreate",
                )
            },
            "/accounts/{account_id}/policy": {
                "get": _op("The account's policy (operator)", 200, "Policy", params=account),
                "put": _op(
                    "Set the account's policy (operator)",
                    200,
                    "Policy",
                    params=account,
                    body="PolicySet",
                ),
                "delete": _op("Back to the default policy (operator)", 204, None, params=account),
            },
            "/audit": {
                "get": _op(
                    "The audit trail, newest first",
                    200,
                    "AuditPage",
                    params=[*PAGING, *filters, _query("device", MAC)],
                )
            },
            **order_paths(),
            **import_paths(),
            **claim_paths(),
        },
    }
