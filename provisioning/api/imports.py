"""Bulk import over the API: `POST /imports`, the CSV file of `provisioning import` as the body.

The same domain function as the CLI (`imports.import_csv`), in one transaction: the answer is
the report `provisioning import --json` prints. What the caller gets:

- 200 and the report: the import was committed (every row, or with `mode=continue` the good
  ones, the refused ones listed with their row and column), or a dry run (`dry_run=true`,
  nothing written, every problem listed).
- 422 problem `import-refused`, the report in its `report` member: with `mode=all` (the
  default) some row was refused (a row whose line a phone's files could not carry too: its
  problem names the file, the slot and the reason), so nothing was written; or the file as a
  whole is unreadable (not UTF-8, a bad header, a broken quote), whatever the mode.
- 413 `too-large` past `MAX_BYTES`, 415 `unsupported-media-type` for a body that is not
  `text/csv`, 422 `invalid-input` for a bad query parameter, 403 for a customer's token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from provisioning import imports
from provisioning.api.access import actor, require_operator
from provisioning.api.bodies import query_bool, read_bounded
from provisioning.api.problems import problem
from provisioning.errors import InvalidInput
from provisioning.state import SERVICES

routes = web.RouteTableDef()

# 16 MiB: about 140,000 rows of the documented format (the 10,000-phone benchmark file of
# 20,000 rows is 2.3 MB). A bigger file is split, or imported with the CLI.
MAX_BYTES = 16 * 1024 * 1024
CONTENT_TYPES = ("text/csv",)
MODES = ("all", "continue")


def _too_large() -> web.Response:
    return problem(
        413,
        "too-large",
        "Request too large",
        f"an import takes at most {MAX_BYTES // (1024 * 1024)} MiB: split the file, or use "
        "`provisioning import`",
    )


@routes.post("/imports")
async def create_import(request: web.Request) -> web.Response:
    require_operator(request)
    dry_run = query_bool(request, "dry_run")
    mode_text = request.query.get("mode", "all")
    if mode_text not in MODES:
        raise InvalidInput(f"mode: one of {', '.join(MODES)}", field="mode")
    if request.content_type not in CONTENT_TYPES:
        return problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send the CSV file as text/csv (UTF-8)",
            field="body",
        )
    body = await read_bounded(request, MAX_BYTES)
    if body is None:
        return _too_large()
    mode: imports.Mode = "dry-run" if dry_run else "continue" if mode_text == "continue" else "all"
    services = request.config_dict[SERVICES]
    async with services.sessions() as session, session.begin():
        report = await imports.import_csv(
            session,
            services.settings,
            services.catalog,
            services.cipher,
            body,
            mode=mode,
            actor=actor(request),
            files=services.files_check,
        )
    view: dict[str, Any] = report.view()
    if report.committed or mode == "dry-run":
        return web.json_response(view)
    return problem(
        422,
        "import-refused",
        "Invalid input",
        f"{len(report.problems)} problem(s) in {len(report.refused_rows)} row(s); nothing "
        "written (the report lists each with its row and column)",
        report=view,
    )
