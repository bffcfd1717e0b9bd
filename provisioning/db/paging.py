"""Pages of a query: the rows asked for and how many there are in all."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


async def paged(
    session: AsyncSession, query: Select[T], limit: int, offset: int
) -> tuple[list[T], int]:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows: list[T] = list((await session.scalars(query.limit(limit).offset(offset))).all())
    return rows, int(total or 0)


def page_view(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}
