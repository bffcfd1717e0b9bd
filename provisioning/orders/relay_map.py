"""The "plan de votre ville": an SVG map of the town with the nearest pick-up points numbered
as in the list (1 = nearest), the searched place in the middle, a grid, a scale and a legend.
Drawn from coordinates alone, so it works offline; every text is XML-escaped."""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

from provisioning.orders.relay_points import Search

WIDTH = 720
MAP_HEIGHT = 480
LEGEND_ROW = 22
_HOUSE = '<path d="M-9,2 L0,-8 L9,2 L6,2 L6,9 L-6,9 L-6,2 Z" fill="#1f4e79"/>'
_STEPS_KM = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


def _distance_label(metres: int) -> str:
    return f"{metres} m" if metres < 1000 else f"{metres / 1000:.1f} km".replace(".", ",")


def _step_label(km: float) -> str:
    return f"{round(km * 1000)} m" if km < 1 else f"{km:g} km"


def relay_map_svg(search: Search) -> str:
    place = search.place
    cos_lat = math.cos(math.radians(place.lat))

    def km(lat: float, lon: float) -> tuple[float, float]:
        return (lon - place.lon) * 111.320 * cos_lat, (lat - place.lat) * 110.574

    spots = [km(n.point.lat, n.point.lon) for n in search.points]
    # Frame the searched place and every point, clear of the title (top) and the scale (bottom).
    xs, ys = [0.0, *(x for x, _ in spots)], [0.0, *(y for _, y in spots)]
    mid_x, mid_y = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    half_x = max(0.25, (max(xs) - min(xs)) / 2)
    half_y = max(0.25, (max(ys) - min(ys)) / 2)
    top, bottom, margin = 60, 36, 24
    usable = MAP_HEIGHT - top - bottom
    scale = min((WIDTH / 2 - margin) / half_x, (usable / 2 - margin) / half_y)
    cx = WIDTH / 2 - mid_x * scale
    cy = top + usable / 2 + mid_y * scale
    step = next((s for s in _STEPS_KM if WIDTH / (s * scale) <= 10), _STEPS_KM[-1])
    positions = [(cx + x * scale, cy - y * scale) for x, y in spots]
    markers = _spread(positions)
    height = MAP_HEIGHT + 16 + LEGEND_ROW * (len(search.points) + 2)
    title = f"Plan de {place.label} : points relais les plus proches"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{MAP_HEIGHT}" fill="#f3efe6"/>',
        '<g stroke="#d9d2c3" stroke-width="1">',
    ]
    lines = math.ceil(2 * max(WIDTH, MAP_HEIGHT) / (step * scale))
    for i in range(-lines, lines + 1):
        x, y = cx + i * step * scale, cy + i * step * scale
        if 0 <= x <= WIDTH:
            out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{MAP_HEIGHT}"/>')
        if 0 <= y <= MAP_HEIGHT:
            out.append(f'<line x1="0" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}"/>')
    out.append("</g>")
    # The searched place: a house in the middle.
    out += [
        f'<g transform="translate({cx:.1f},{cy:.1f})">',
        f"<title>{escape(place.label)}</title>",
        _HOUSE,
        "</g>",
    ]
    for number, (nearby, (px, py), (mx, my)) in enumerate(
        zip(search.points, positions, markers, strict=True), 1
    ):
        if (mx, my) != (px, py):
            # Moved aside so that close points stay readable: a leader to the true place.
            out.append(
                f'<line x1="{px:.1f}" y1="{py:.1f}" x2="{mx:.1f}" y2="{my:.1f}" '
                'stroke="#c8102e" stroke-width="1.5"/>'
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="#c8102e"/>'
            )
        out += [
            f'<g transform="translate({mx:.1f},{my:.1f})">',
            f"<title>{number}. {escape(nearby.point.name)}</title>",
            '<circle r="12" fill="#c8102e" stroke="#ffffff" stroke-width="2"/>',
            '<text y="4.5" text-anchor="middle" font-family="sans-serif" font-size="13" '
            f'font-weight="bold" fill="#ffffff">{number}</text>',
            "</g>",
        ]
    # Scale bar and north arrow.
    bar = step * scale
    out += [
        f'<g transform="translate(16,{MAP_HEIGHT - 12})" font-family="sans-serif" font-size="12">',
        f'<rect width="{bar:.1f}" height="5" fill="#333333"/>',
        f'<text y="-6">{_step_label(step)}</text>',
        "</g>",
        f'<g transform="translate({WIDTH - 28},34)" font-family="sans-serif" font-size="13">',
        '<path d="M0,-18 L7,2 L0,-3 L-7,2 Z" fill="#333333"/>',
        '<text y="18" text-anchor="middle">N</text>',
        "</g>",
        f'<text x="16" y="24" font-family="sans-serif" font-size="16" font-weight="bold" '
        f'fill="#222222">{escape(title)}</text>',
    ]
    if search.sample:
        out.append(
            '<text x="16" y="44" font-family="sans-serif" font-size="12" fill="#8a1c1c">'
            "Données d'exemple : points fictifs</text>"
        )
    y = MAP_HEIGHT + 16 + LEGEND_ROW
    out += [
        f'<g transform="translate(22,{y - 5})">{_HOUSE}</g>',
        f'<text x="38" y="{y}" font-family="sans-serif" font-size="13" fill="#1f4e79">'
        f"{escape(place.label)} (centre de la recherche)</text>",
    ]
    for number, nearby in enumerate(search.points, 1):
        y += LEGEND_ROW
        p = nearby.point
        text = (
            f"{number}. {p.name} — {p.street}, {p.postcode} {p.town} · "
            f"{_distance_label(nearby.distance_m)}"
        )
        out.append(
            f'<text x="16" y="{y}" font-family="sans-serif" font-size="13" fill="#222222">'
            f"{escape(text)}</text>"
        )
    if not search.points:
        out.append(
            f'<text x="16" y="{y + LEGEND_ROW}" font-family="sans-serif" font-size="13">'
            "Aucun point relais à proximité.</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _spread(positions: list[tuple[float, float]], gap: float = 27) -> list[tuple[float, float]]:
    """Marker positions that do not cover one another: a marker too close to one already placed
    goes round its true place on widening circles until it is clear."""
    placed: list[tuple[float, float]] = []
    for x, y in positions:
        candidate = (x, y)
        for attempt in range(1, 200):
            if all(math.dist(candidate, other) >= gap for other in placed):
                break
            angle = attempt * 2.4  # radians: the golden angle spreads tries all around
            radius = gap * (1 + attempt / 8)
            candidate = (x + radius * math.cos(angle), y - radius * math.sin(angle))
        placed.append(candidate)
    return placed
