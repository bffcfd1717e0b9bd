"""The bulk part of the OpenAPI document (merged by `openapi`): the CSV import and the bulk
claim of unknown devices."""

from __future__ import annotations

from typing import Any

from provisioning.api.openapi import ID, JSON, PROBLEM, _nullable, _obj, _query, _ref

CSV = "text/csv"
KINDS = ("accounts", "lines", "devices", "slots")
COUNTS = _obj(list(KINDS), **{kind: {"type": "integer", "minimum": 0} for kind in KINDS})
ROW_PROBLEM = _obj(
    ["row", "column", "message"],
    row=_nullable("integer", description="the spreadsheet's row number (the header is 1)"),
    column=_nullable("string"),
    message={"type": "string"},
)

IMPORT_SCHEMAS: dict[str, Any] = {
    "Counts": COUNTS,
    "RowProblem": ROW_PROBLEM,
    "ImportReport": _obj(
        [
            "mode",
            "committed",
            "rows",
            "imported_rows",
            "refused_rows",
            "created",
            "existing",
            "pushes",
            "problems",
        ],
        mode={"enum": ["all", "continue", "dry-run"]},
        committed={"type": "boolean"},
        rows={"type": "integer", "minimum": 0},
        imported_rows={"type": "integer", "minimum": 0},
        refused_rows={"type": "array", "items": {"type": "integer"}},
        created=_ref("Counts"),
        existing=_ref("Counts"),
        pushes={"type": "integer", "minimum": 0},
        problems={"type": "array", "items": _ref("RowProblem")},
    ),
    "ClaimRequest": _obj(
        ["macs"],
        macs={"type": "array", "items": {"type": "string", "maxLength": 64}, "maxItems": 10000},
        model={"type": "string", "description": "default: the model the User-Agent names"},
        account_id={**ID, "description": "default: none (the phones go to stock)"},
    ),
    "ClaimReport": _obj(
        ["dry_run", "committed", "claimed", "problems"],
        dry_run={"type": "boolean"},
        committed={"type": "boolean"},
        claimed={
            "type": "array",
            "items": _obj(
                ["mac", "model", "account_id"],
                mac={"type": "string"},
                model={"type": "string"},
                account_id=_nullable("integer"),
                url={"type": "string", "description": "its provisioning URL, shown once"},
            ),
        },
        problems={"type": "array", "items": _ref("RowProblem")},
    ),
}


def _refused(what: str) -> dict[str, Any]:
    return {
        "description": f"{what} refused: a problem whose `report` member lists every problem",
        "content": {
            PROBLEM: {
                "schema": {
                    "allOf": [
                        _ref("Problem"),
                        {"type": "object", "properties": {"report": {"type": "object"}}},
                    ]
                }
            }
        },
    }


def _problem() -> dict[str, Any]:
    return {
        "description": "a problem (RFC 9457)",
        "content": {PROBLEM: {"schema": _ref("Problem")}},
    }


def import_paths() -> dict[str, Any]:
    return {
        "/imports": {
            "post": {
                "summary": (
                    "Import accounts, lines, phones and slots from a CSV file (operator); the "
                    "format is `provisioning import --help`'s"
                ),
                "parameters": [
                    _query(
                        "dry_run",
                        {"enum": ["true", "false"]},
                        "check every row, write nothing",
                    ),
                    _query(
                        "mode",
                        {"enum": ["all", "continue"]},
                        "all or nothing (default), or import the good rows",
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {CSV: {"schema": {"type": "string", "maxLength": 16 * 1024**2}}},
                },
                "responses": {
                    "200": {
                        "description": "committed, or a dry run: the report",
                        "content": {JSON: {"schema": _ref("ImportReport")}},
                    },
                    "422": _refused("the import"),
                    "default": _problem(),
                },
            }
        }
    }


def claim_paths() -> dict[str, Any]:
    return {
        "/devices/unknown/claims": {
            "post": {
                "summary": (
                    "Register unknown devices in bulk (operator): a MAC list (JSON) or a CSV "
                    "file (mac, model, account_id), all or nothing"
                ),
                "parameters": [
                    _query("dry_run", {"enum": ["true", "false"]}, "check, write nothing")
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": _ref("ClaimRequest")},
                        CSV: {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "201": {
                        "description": "claimed: each phone with its provisioning URL",
                        "content": {JSON: {"schema": _ref("ClaimReport")}},
                    },
                    "200": {
                        "description": "a dry run: what would be claimed",
                        "content": {JSON: {"schema": _ref("ClaimReport")}},
                    },
                    "422": _refused("the claim"),
                    "default": _problem(),
                },
            }
        },
    }
