"""The fleet page as HTML, and the run history as SVG: server-rendered, small, everything escaped.

Pure Python, no Airflow import. Whatever came from a host (output tails, names, details) or from
a user (run ids, filters) goes through :func:`esc` before it reaches the page; the only script is
the page's own, allowed by a per-response nonce in the Content-Security-Policy the app sends.

Over 350 lines for a reason: the page's HTML, its stylesheet (light and dark) and its one script
are one template.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from cots_ssm.fleet.model import GROUP_RANK, FleetPage, HistoryPoint, InstanceView, group_of
from ssm_fleet.status import Status

#: Bar slots of the history chart (the data side reads as many runs).
HISTORY_SLOTS = 30
#: Seconds between two refreshes of a live page.
REFRESH_SECONDS = 5

# Airflow 3's UI (Chakra UI v3, its theme read at 3.3.2): the font stack, the palette steps its
# state badges use (``<colour>.600`` in both modes) and the semantic tokens of its light and dark
# themes. Each SSM status takes the colour of the Airflow task state closest to it.
_FONT = 'Inter, -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif'
_MONO = 'SFMono-Regular, Menlo, Monaco, Consolas, "Liberation Mono", "Courier New", monospace'

#: One colour per status (Airflow's ``.600`` step of the state it resembles, in parentheses).
COLOURS: Mapping[Status, str] = {
    Status.PENDING: "oklch(0.444 0.011 73.639)",  # stone (queued)
    Status.IN_PROGRESS: "oklch(0.609 0.126 221.723)",  # cyan (running)
    Status.DELAYED: "oklch(0.681 0.162 75.834)",  # yellow (up_for_retry)
    Status.SUCCESS: "oklch(0.47 0.20 149.0)",  # green (success)
    Status.CANCELLED: "oklch(0.5902 0.198 35.93)",  # orange
    Status.TIMED_OUT: "oklch(0.558 0.288 302.321)",  # purple
    Status.FAILED: "oklch(0.577 0.245 27.325)",  # red (failed)
    Status.CANCELLING: "oklch(0.666 0.179 58.318)",  # amber
}

#: Airflow's semantic tokens: bg, bg.subtle, bg.muted, fg, fg.muted, border, brand solid, focus ring.
_LIGHT = (
    "--bg:#fff;--bg-subtle:oklch(0.985 0.004 253);--bg-muted:oklch(0.955 0.006 253);"
    "--fg:oklch(0.23185 0.0323 266.44);--fg-muted:oklch(0.45 0.055 251);--border:oklch(0.915 0.01 253);"
    "--brand:oklch(0.469 0.084 257.657);--link:oklch(0.469 0.084 257.657);--ring:oklch(0.324 0.072 260.329);"
    "--bar:oklch(0.705 0.066 256.378);--current:oklch(0.324 0.072 260.329);color-scheme:light"
)
_DARK = (
    "--bg:oklch(0.23185 0.0323 266.44);--bg-subtle:oklch(0.11 0.025 251);--bg-muted:oklch(0.18 0.03 251);"
    "--fg:oklch(0.985 0.004 253);--fg-muted:oklch(0.75 0.025 252);--border:oklch(0.28 0.035 251);"
    "--brand:oklch(0.469 0.084 257.657);--link:oklch(0.865 0.039 252.42);--ring:oklch(0.923 0.023 255.082);"
    "--bar:oklch(0.575 0.08 257.759);--current:oklch(0.923 0.023 255.082);color-scheme:dark"
)


def esc(value: object) -> str:
    """HTML-escape any value, quotes included (safe in text and in attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def css_class(status: Status) -> str:
    """The CSS class of a status badge (``st-<status>``)."""
    return "st-" + status.name.lower()


def safe_url(url: str) -> str:
    """Only http(s) links reach an ``href``; anything else (``javascript:``) becomes ``#``."""
    return url if url.startswith(("https://", "http://", "/")) and not url.startswith("//") else "#"


# The page follows the Airflow UI's colour mode: the UI's own choice when the script can read it
# (``data-theme``, set from the parent page or the UI's stored ``theme``), else the system's.
_STYLE = (
    f":root{{{_LIGHT}}}:root[data-theme=dark]{{{_DARK}}}"
    f"@media (prefers-color-scheme:dark){{:root:not([data-theme=light]){{{_DARK}}}}}"
    f"body{{font:14px/1.5 {_FONT};margin:0;padding:16px 20px;background:var(--bg);color:var(--fg)}}"
    "a{color:var(--link)}a:focus-visible,button:focus-visible,input:focus-visible,select:focus-visible"
    "{outline:2px solid var(--ring);outline-offset:1px}"
    "h1{font-size:18px;font-weight:600;margin:0}h2{font-size:15px;font-weight:600;margin:20px 0 8px}"
    "h3{font-size:13px;font-weight:600;margin:12px 0 4px;color:var(--fg-muted)}"
    "header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 12px;margin-bottom:8px}"
    ".muted{color:var(--fg-muted)}.note{background:var(--bg-muted);border-radius:6px;padding:6px 10px}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:9999px;color:#fff;font-size:12px;"
    "font-weight:500;line-height:20px;white-space:nowrap}"
    "#counts{display:flex;flex-wrap:wrap;align-items:center;gap:6px 8px;margin:8px 0}"
    "#grid{display:grid;grid-template-columns:repeat(auto-fill,14px);gap:2px;max-width:1400px}"
    "#grid a{display:block;width:14px;height:14px;border-radius:3px}"
    "#grid a.sel{outline:2px solid var(--fg);outline-offset:1px}"
    "table{border-collapse:collapse;font-size:13px}"
    "th{font-weight:600;color:var(--fg-muted);text-align:left;padding:6px 10px;"
    "border-bottom:1px solid var(--border)}"
    "td{padding:4px 10px;border-bottom:1px solid var(--border)}tbody tr:hover{background:var(--bg-subtle)}"
    f"pre{{font:12px/1.45 {_MONO};background:var(--bg-muted);padding:8px 10px;border-radius:6px;"
    "max-height:300px;overflow:auto;white-space:pre-wrap;margin:0}"
    "#detail{border:1px solid var(--border);background:var(--bg-subtle);padding:4px 14px 12px;"
    "border-radius:8px;max-width:1000px;margin-top:12px}"
    "#detail h2{margin-top:10px}"
    "input,select{font:inherit;font-size:14px;height:32px;padding:0 10px;border:1px solid var(--border);"
    "border-radius:4px;background:var(--bg);color:var(--fg)}"
    "button{font:inherit;font-size:14px;font-weight:500;height:32px;padding:0 12px;border:0;"
    "border-radius:4px;background:var(--brand);color:#fff;cursor:pointer}"
    "form{display:flex;flex-wrap:wrap;align-items:center;gap:8px;margin-bottom:8px}"
    "svg text{font:11px " + _FONT.replace('"', "'") + ";fill:var(--fg-muted)}"
    "svg .bar{fill:var(--bar)}svg .cur{fill:var(--current)}"
    f"svg .fail{{fill:{COLOURS[Status.FAILED]}}}"
    ".row{display:flex;gap:32px;flex-wrap:wrap}"
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
    """The counts, said once: a badge per status, the fleet's size, and what the badges do not say."""
    counts = sorted(page.counts(), key=lambda count: GROUP_RANK[group_of(count[0])])
    badges = "".join(
        f'<span class="badge {css_class(s)}" data-status="{esc(s.value)}">{n} {esc(s.value)}</span>'
        for s, n in counts
    )
    total = max(page.expected, len(page.instances))
    remarks = "".join(f'<span class="muted"> · {esc(r)}</span>' for r in page.remarks())
    size = f'<span class="muted">of {total} host{"" if total == 1 else "s"}</span>' if total else ""
    return f'<section id="counts">{badges or "<span>No host listed yet.</span>"}{size}{remarks}</section>'


def _cell(view: InstanceView, selected: str) -> str:
    title = f"{view.instance_id} {view.instance_name} {view.status.value} ({view.status_details})"
    title += f", {view.resent}" if view.resent else ""
    sel = " sel" if view.instance_id == selected else ""
    return (
        f'<a class="{css_class(view.status)}{sel}" href="?instance={quote(view.instance_id)}#detail"'
        f' title="{esc(title)}" data-i="{esc(view.instance_id)}"></a>'
    )


def _grid(ordered: Sequence[InstanceView], selected: str) -> str:
    cells = "".join(_cell(v, selected) for v in ordered)
    return f'<section><div id="grid" aria-label="hosts, failed first">{cells}</div></section>'


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
        f'<section id="detail"><h2>{esc(view.instance_id)} <span class="muted">{esc(view.instance_name)}'
        f'</span></h2><p><span class="badge {css_class(view.status)}">{esc(view.status.value)}</span> '
        f"{esc(view.status_details)}: {esc(view.explanation)}</p>"
        f"<p>Exit code: {esc(code)} · started {esc(view.started_at or '-')} · "
        f"{esc(_seconds(view.duration_seconds))} · attempt {view.attempt} · command "
        f"{esc(view.command_id or '-')}</p>"
        + (f'<p id="resent">{esc(view.resent)} (automatically, by the wait)</p>' if view.resent else "")
        + f"<p>{links}</p>"
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


def _table(ordered: Sequence[InstanceView], options: PageOptions) -> str:
    shown = [v for v in ordered if _matches(v, options)]
    rows = "".join(_row(v) for v in shown)
    filtered = options.status or options.text.strip()
    matched = f"{len(shown)} of {len(ordered)} match" if filtered else ""
    matched = f' <span class="muted" id="matched">{matched}</span>' if matched else ""
    return (
        f"<section><h2>Hosts{matched}</h2>{_filter_form(options)}"
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
    """Duration (bars) and failed instances (red marks) of the last runs; the current run highlighted.

    Colours come from the page's style sheet (classes ``bar``, ``cur``, ``fail``), so the chart
    follows the light and dark themes.
    """
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
        f'<text x="{width - 150}" y="10">most failed: {most_failed}</text>',
    ]
    for n, point in enumerate(points):
        x = n * step + 1
        duration = point.duration_seconds or 0.0
        bar = max(1.0, bar_area * duration / longest) if point.duration_seconds else 1.0
        label = (
            f"{point.run_id}: {point.state}, {_seconds(point.duration_seconds)}, "
            f"{'?' if point.failed is None else point.failed} failed"
        )
        parts.append(
            f'<g><title>{esc(label)}</title><rect class="{"cur" if point.current else "bar"}" x="{x:.1f}" '
            f'y="{15 + bar_area - bar:.1f}" width="{max(step - 2, 1):.1f}" height="{bar:.1f}"/>'
        )
        if point.failed:
            mark = max(2.0, 25 * point.failed / most_failed)
            parts.append(
                f'<rect class="fail" x="{x:.1f}" y="{height - 5 - mark:.1f}" width="{max(step - 2, 1):.1f}" '
                f'height="{mark:.1f}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _history(page: FleetPage) -> str:
    return (
        '<section><h2>Last runs of this DAG</h2><p class="muted">Bars: duration; red: failed instances; '
        f"highlighted: this run.</p>{history_svg(page.history)}</section>"
    )


# Follow the Airflow UI's colour mode: next-themes puts ``dark`` or ``light`` on the UI's <html>
# (the page is in its iframe, same origin) and stores the choice as ``theme`` in localStorage.
_THEME_SCRIPT = (
    "(function(){var r=document.documentElement;function mode(){try{var c=window.parent.document"
    ".documentElement.classList;if(window.parent!==window){if(c.contains('dark'))return 'dark';"
    "if(c.contains('light'))return 'light';}}catch(e){}try{var s=localStorage.getItem('theme');"
    "if(s==='dark'||s==='light')return s;}catch(e){}return '';}"
    "function apply(){var m=mode();if(m)r.setAttribute('data-theme',m);else r.removeAttribute('data-theme');}"
    "apply();try{if(window.parent!==window)new MutationObserver(apply).observe("
    "window.parent.document.documentElement,{attributes:true,attributeFilter:['class']});}catch(e){}})();"
)

# Refresh a live page in place, and (Airflow 3.0, whose UI keeps its token in localStorage rather
# than in a cookie) load the page with that token from the 401 shell.
_SCRIPT = (
    "(function(){var t=localStorage.getItem('token'),h=t?{Authorization:'Bearer '+t}:{};"
    "async function get(){var r=await fetch(location.href,{credentials:'same-origin',headers:h});"
    "if(!r.ok)return null;return new DOMParser().parseFromString(await r.text(),'text/html');}"
    "function loop(){var i=setInterval(async function(){try{var d=await get();if(!d)return;"
    "var n=d.getElementById('live');if(n)document.getElementById('live').replaceWith(n);"
    "if(!d.body.hasAttribute('data-live')){document.body.removeAttribute('data-live');clearInterval(i);}"
    "}catch(e){}},%d);}"
    "var b=document.body;if(b.hasAttribute('data-shell')){if(t)get().then(function(d){if(!d)return;"
    "document.title=d.title;b.innerHTML=d.body.innerHTML;"
    "b.removeAttribute('data-shell');if(d.body.hasAttribute('data-live')){b.setAttribute('data-live','');loop();}"
    "});}else if(b.hasAttribute('data-live'))loop();})();"
)


def _script(nonce: str, *, live: bool) -> str:
    """The page's only script, allowed by the response's nonce: the theme, and a live page's refresh."""
    if not nonce:
        return ""
    body = _THEME_SCRIPT + (_SCRIPT % (REFRESH_SECONDS * 1000) if live else "")
    return f'<script nonce="{esc(nonce)}">{body}</script>'


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head>"
    )


def render_login_shell(nonce: str, detail: str) -> str:
    """What an unauthenticated browser gets (with HTTP 401): no data, a way to log in.

    On Airflow 3.0 the UI holds its token in localStorage, not in a cookie: the shell's script
    loads the page again with that token, if there is one.
    """
    return (
        f"{_head('Fleet: log in')}<body data-shell><h1>Fleet view</h1>"
        f'<p>{esc(detail)}: <a href="/">log in to Airflow</a>, then open this page again.</p>'
        f"{_script(nonce, live=True)}</body></html>"
    )


def render_page(page: FleetPage, options: PageOptions | None = None) -> str:
    """The whole fleet page of one run.

    Counts are said once (a badge per status); failed hosts come first in the grid and the table,
    and a run with a failed host opens with the first one's details unless another is asked for.
    """
    options = options or PageOptions()
    ordered = page.failed_first()
    opened = page.first_failed() if not options.instance else page.find(options.instance)
    instance = options.instance or (opened.instance_id if opened else "")
    source = "live from SSM, refreshing" if page.live else "as the sensor recorded it"
    back = (
        f' · <a href="{esc(safe_url(options.back_url))}" target="_top">the run in Airflow</a>'
        if options.back_url
        else ""
    )
    note = f'<p class="note">{esc(page.note)}</p>' if page.note else ""
    if page.overrides:  # a run triggered with other values than the job's says so, first
        note += '<p class="note" id="overrides">' + "<br>".join(map(esc, page.overrides)) + "</p>"
    if page.deadline:
        note += f'<p class="muted" id="deadline">{esc(page.deadline)}</p>'
    commands = " ".join(
        f'<a href="{esc(safe_url(url))}" target="_blank" rel="noopener noreferrer">{esc(cid)}</a>'
        for cid, url in page.commands
    )
    return (
        f"{_head(f'Fleet: {page.dag_id} {page.run_id}')}<body{' data-live' if page.live else ''}>"
        f'<header><h1>{esc(page.dag_id)}</h1><span class="muted">{esc(page.run_id)}</span></header>'
        f'<div id="live"><p class="muted">Run {esc(page.run_state)} · {esc(source)}{back}'
        f" · commands: {commands or '-'}</p>{note}"
        f"{_counts(page)}{_grid(ordered, instance)}{_detail(opened, instance)}"
        f'<div class="row">{_history(page)}{_slowest(page)}</div>{_table(ordered, options)}</div>'
        f"{_script(options.nonce, live=page.live)}</body></html>"
    )
