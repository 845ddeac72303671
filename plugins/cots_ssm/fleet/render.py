"""The fleet page as HTML, and the run history as SVG: server-rendered, small, everything escaped.

Pure Python, no Airflow import. Whatever came from a host (output tails, names, details) or from
a user (run ids, filters) goes through :func:`esc` before it reaches the page; the only script is
the page's own, allowed by a per-response nonce in the Content-Security-Policy the app sends.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from cots_ssm.fleet.model import FleetPage, Group, HistoryPoint, InstanceView
from cots_ssm.status import Status

#: Bar slots of the history chart (the data side reads as many runs).
HISTORY_SLOTS = 30
#: Seconds between two refreshes of a live page.
REFRESH_SECONDS = 5

#: One colour per status; the text of a cell's title and the legend say the status in words.
COLOURS: Mapping[Status, str] = {
    Status.PENDING: "#b0b7c3",
    Status.IN_PROGRESS: "#3b82f6",
    Status.DELAYED: "#93c5fd",
    Status.SUCCESS: "#22a55b",
    Status.CANCELLED: "#f59e0b",
    Status.TIMED_OUT: "#9333ea",
    Status.FAILED: "#dc2626",
    Status.CANCELLING: "#fcd34d",
}


def esc(value: object) -> str:
    """HTML-escape any value, quotes included (safe in text and in attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def css_class(status: Status) -> str:
    """The CSS class of a status badge (``st-<status>``)."""
    return "st-" + status.name.lower()


def safe_url(url: str) -> str:
    """Only http(s) links reach an ``href``; anything else (``javascript:``) becomes ``#``."""
    return url if url.startswith(("https://", "http://", "/")) and not url.startswith("//") else "#"


_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:16px;color:#111}"
    "h1{font-size:18px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}"
    ".muted{color:#555}.counts span{display:inline-block;margin:0 12px 6px 0;padding:2px 8px;"
    "border-radius:4px;color:#fff}"
    "#grid{display:grid;grid-template-columns:repeat(auto-fill,14px);gap:2px;max-width:1400px}"
    "#grid a{display:block;width:14px;height:14px;border-radius:2px}"
    "#grid a.sel{outline:2px solid #111}"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #e5e7eb;text-align:left}"
    "pre{background:#f3f4f6;padding:8px;max-height:300px;overflow:auto;white-space:pre-wrap}"
    "#detail{border:1px solid #d1d5db;padding:8px 12px;border-radius:6px;max-width:1000px}"
    "svg text{font:11px system-ui,sans-serif}.row{display:flex;gap:32px;flex-wrap:wrap}"
    + "".join(f".{css_class(s)}{{background:{c}}}" for s, c in COLOURS.items())
    + "tr[class^=st-]{background:none}"
)


@dataclass(frozen=True)
class PageOptions:
    """What the request asks the page to show.

    :param instance: the instance whose details are open.
    :param status: show only instances of this status in the table (a :class:`Status` value).
    :param text: show only table rows containing this text (instance, name, details).
    :param back_url: the run's page in the Airflow UI.
    :param nonce: the Content-Security-Policy nonce of the page's own script.
    """

    instance: str = ""
    status: str = ""
    text: str = ""
    back_url: str = ""
    nonce: str = ""


def _counts(page: FleetPage) -> str:
    spans = "".join(
        f'<span class="{css_class(s)}" data-status="{esc(s.value)}">{n} {esc(s.value)}</span>'
        for s, n in page.counts()
    )
    groups = page.group_counts()
    summary = ", ".join(f"{groups[g]} {g.value}" for g in Group)
    return f'<section id="counts" class="counts"><p class="muted">{esc(summary)}</p>{spans}</section>'


def _cell(view: InstanceView, selected: str) -> str:
    title = f"{view.instance_id} {view.instance_name} {view.status.value} ({view.status_details})"
    sel = " sel" if view.instance_id == selected else ""
    return (
        f'<a class="{css_class(view.status)}{sel}" href="?instance={quote(view.instance_id)}#detail"'
        f' title="{esc(title)}" data-i="{esc(view.instance_id)}"></a>'
    )


def _grid(page: FleetPage, selected: str) -> str:
    cells = "".join(_cell(v, selected) for v in page.instances)
    return f'<section><h2>Instances ({len(page.instances)})</h2><div id="grid">{cells}</div></section>'


def _detail(view: InstanceView | None, instance: str) -> str:
    if not instance:
        return ""
    if view is None:
        return f'<section id="detail"><p>No instance {esc(instance)} in this run.</p></section>'
    code = "none (still running, or never started)" if view.exit_code is None else str(view.exit_code)
    links = " · ".join(
        f'<a href="{esc(safe_url(url))}" target="_blank" rel="noopener noreferrer">{esc(label)}</a>'
        for label, url in view.links
    )
    return (
        f'<section id="detail"><h2>{esc(view.instance_id)} {esc(view.instance_name)}</h2>'
        f'<p><span class="{css_class(view.status)}" style="color:#fff;padding:1px 6px">'
        f"{esc(view.status.value)}</span> {esc(view.status_details)}: {esc(view.explanation)}</p>"
        f"<p>Exit code: {esc(code)} · started {esc(view.started_at or '-')} · "
        f"{esc(_seconds(view.duration_seconds))} · attempt {view.attempt} · command "
        f"{esc(view.command_id or '-')}</p>"
        f"<p>{links}</p>"
        f'<h3>stderr (last lines)</h3><pre id="stderr">{esc(view.stderr_tail or "(empty)")}</pre>'
        f'<h3>stdout (last lines)</h3><pre id="stdout">{esc(view.stdout_tail or "(empty)")}</pre>'
        "</section>"
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _matches(view: InstanceView, options: PageOptions) -> bool:
    if options.status and view.status.value != options.status:
        return False
    needle = options.text.strip().lower()
    haystack = f"{view.instance_id} {view.instance_name} {view.status_details} {view.exit_code}"
    return not needle or needle in haystack.lower()


def _row(view: InstanceView) -> str:
    return (
        f'<tr class="{css_class(view.status)}"><td><a href="?instance={quote(view.instance_id)}#detail">'
        f"{esc(view.instance_id)}</a></td><td>{esc(view.instance_name)}</td>"
        f"<td>{esc(view.status.value)}</td><td>{esc(view.status_details)}</td>"
        f"<td>{esc('' if view.exit_code is None else view.exit_code)}</td>"
        f"<td>{esc(view.started_at or '')}</td><td>{esc(_seconds(view.duration_seconds))}</td></tr>"
    )


def _filter_form(options: PageOptions) -> str:
    choices = "".join(
        f'<option value="{esc(s.value)}"{" selected" if s.value == options.status else ""}>'
        f"{esc(s.value)}</option>"
        for s in Status
    )
    return (
        '<form method="get" id="filter"><label>Status <select name="status"><option value="">all</option>'
        f'{choices}</select></label> <label>Text <input name="q" value="{esc(options.text)}"></label>'
        ' <button type="submit">Filter</button></form>'
    )


def _table(page: FleetPage, options: PageOptions) -> str:
    shown = [v for v in page.instances if _matches(v, options)]
    rows = "".join(_row(v) for v in shown)
    return (
        f"<section><h2>Table ({len(shown)} of {len(page.instances)})</h2>{_filter_form(options)}"
        '<table id="instances"><thead><tr><th>instance</th><th>name</th><th>status</th><th>details</th>'
        f"<th>exit</th><th>start</th><th>duration</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _slowest(page: FleetPage) -> str:
    items = "".join(
        f'<li><a href="?instance={quote(v.instance_id)}#detail">{esc(v.instance_id)}</a> '
        f"{esc(_seconds(v.duration_seconds))} ({esc(v.status.value)})</li>"
        for v in page.slowest()
    )
    items = items or "<li>none finished yet</li>"
    return f'<section id="slowest"><h2>Slowest instances</h2><ol>{items}</ol></section>'


def history_svg(points: Sequence[HistoryPoint], *, width: int = 640, height: int = 150) -> str:
    """Duration (bars) and failed instances (red marks) of the last runs; the current run highlighted."""
    if not points:
        return "<p>No earlier runs.</p>"
    longest = max((p.duration_seconds or 0.0) for p in points) or 1.0
    most_failed = max((p.failed or 0) for p in points) or 1
    step = width / max(len(points), HISTORY_SLOTS)  # bars keep their width on a young DAG
    bar_area = height - 50
    parts = [
        f'<svg id="history" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Duration and failed instances of the last runs">',
        f'<text x="0" y="10">longest {esc(_seconds(longest))}</text>',
        f'<text x="{width - 150}" y="10" fill="#dc2626">most failed: {most_failed}</text>',
    ]
    for n, point in enumerate(points):
        x = n * step + 1
        duration = point.duration_seconds or 0.0
        bar = max(1.0, bar_area * duration / longest) if point.duration_seconds else 1.0
        fill = "#f97316" if point.current else "#60a5fa"
        outline = ' stroke="#111" stroke-width="2"' if point.current else ""
        label = (
            f"{point.run_id}: {point.state}, {_seconds(point.duration_seconds)}, "
            f"{'?' if point.failed is None else point.failed} failed"
        )
        parts.append(
            f'<g><title>{esc(label)}</title><rect x="{x:.1f}" y="{15 + bar_area - bar:.1f}" '
            f'width="{max(step - 2, 1):.1f}" height="{bar:.1f}" fill="{fill}"{outline}/>'
        )
        if point.failed:
            mark = max(2.0, 25 * point.failed / most_failed)
            parts.append(
                f'<rect x="{x:.1f}" y="{height - 5 - mark:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{mark:.1f}" fill="#dc2626"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _history(page: FleetPage) -> str:
    return (
        '<section><h2>Last runs of this DAG</h2><p class="muted">Bars: duration; red: failed instances; '
        f"outlined: this run.</p>{history_svg(page.history)}</section>"
    )


# The page's only script: refresh a live page in place, and (Airflow 3.0, whose UI keeps its token
# in localStorage rather than in a cookie) load the page with that token from the 401 shell.
_SCRIPT = (
    "(function(){var t=localStorage.getItem('token'),h=t?{Authorization:'Bearer '+t}:{};"
    "async function get(){var r=await fetch(location.href,{credentials:'same-origin',headers:h});"
    "if(!r.ok)return null;return new DOMParser().parseFromString(await r.text(),'text/html');}"
    "function loop(){var i=setInterval(async function(){try{var d=await get();if(!d)return;"
    "var n=d.getElementById('live');if(n)document.getElementById('live').replaceWith(n);"
    "if(!d.body.hasAttribute('data-live')){document.body.removeAttribute('data-live');clearInterval(i);}"
    "}catch(e){}},%d);}"
    "var b=document.body;if(b.hasAttribute('data-shell')){if(t)get().then(function(d){if(!d)return;"
    "document.title=d.title;document.head.innerHTML=d.head.innerHTML;b.innerHTML=d.body.innerHTML;"
    "b.removeAttribute('data-shell');if(d.body.hasAttribute('data-live')){b.setAttribute('data-live','');loop();}"
    "});}else if(b.hasAttribute('data-live'))loop();})();"
)


def _script(nonce: str) -> str:
    return f'<script nonce="{esc(nonce)}">{_SCRIPT % (REFRESH_SECONDS * 1000)}</script>'


def render_login_shell(nonce: str, detail: str) -> str:
    """What an unauthenticated browser gets (with HTTP 401): no data, a way to log in.

    On Airflow 3.0 the UI holds its token in localStorage, not in a cookie: the shell's script
    loads the page again with that token, if there is one.
    """
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fleet: log in</title>'
        f"<style>{_STYLE}</style></head><body data-shell><h1>Fleet view</h1>"
        f'<p>{esc(detail)}: <a href="/">log in to Airflow</a>, then open this page again.</p>'
        f"{_script(nonce)}</body></html>"
    )


def render_page(page: FleetPage, options: PageOptions | None = None) -> str:
    """The whole fleet page of one run."""
    options = options or PageOptions()
    source = "live from SSM, refreshing" if page.live else "as the sensor recorded it"
    back = (
        f' · <a href="{esc(safe_url(options.back_url))}" target="_top">the run in Airflow</a>'
        if options.back_url
        else ""
    )
    note = f'<p class="note">{esc(page.note)}</p>' if page.note else ""
    if page.overrides:  # a run triggered with other values than the job's says so, first
        note += '<p class="note" id="overrides">' + "<br>".join(map(esc, page.overrides)) + "</p>"
    script = _script(options.nonce) if page.live else ""
    commands = " ".join(
        f'<a href="{esc(safe_url(url))}" target="_blank" rel="noopener noreferrer">{esc(cid)}</a>'
        for cid, url in page.commands
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Fleet: {esc(page.dag_id)} {esc(page.run_id)}</title><style>{_STYLE}</style></head>"
        f"<body{' data-live' if page.live else ''}>"
        f"<h1>Fleet of {esc(page.dag_id)} · {esc(page.run_id)}</h1>"
        f'<div id="live"><p class="muted">Run {esc(page.run_state)} · {esc(source)}{back}</p>{note}'
        f'<p id="progress">{esc(page.progress)}</p>'
        f"<p>Commands: {commands or '-'}</p>"
        f"{_counts(page)}{_grid(page, options.instance)}"
        f"{_detail(page.find(options.instance), options.instance)}"
        f'<div class="row">{_history(page)}{_slowest(page)}</div>{_table(page, options)}</div>'
        f"{script}</body></html>"
    )
