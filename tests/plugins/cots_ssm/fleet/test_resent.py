"""The fleet page names what the wait re-sent by itself, on the host's cell and in its detail."""

from cots_ssm.fleet.model import FleetPage, views_from_rows
from cots_ssm.fleet.render import PageOptions, render_page

from .fleet_rows import XSS, instance_id, rows

NOTE = "re-sent 1x after Delivery Timed Out at 02:14"


def page(note):
    made = rows(2)
    made[1]["resent"] = note
    return FleetPage("cots_nightly_batch", "manual__1", "success", False, tuple(views_from_rows(made)))


def detail(html):
    return html.split('<section id="detail">')[1].split("</section>")[0]


def test_a_resent_host_says_so_in_its_detail_and_its_cell():
    html = render_page(page(NOTE), PageOptions(instance=instance_id(1)))
    assert f"{NOTE} (automatically, by the wait)" in detail(html)
    assert f'Success), {NOTE}"' in html


def test_a_host_never_resent_says_nothing_of_it():
    html = render_page(page(NOTE), PageOptions(instance=instance_id(0)))
    assert "re-sent" not in detail(html)


def test_the_note_is_escaped():
    assert "<script>alert" not in render_page(page(XSS), PageOptions(instance=instance_id(1)))
