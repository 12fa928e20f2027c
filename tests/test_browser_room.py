"""A classroom in real browsers: a teacher's page and three participants, each in its own browser context.

The teacher opens a room from a lesson; two participants join by typing the code on Home, one by the
join link (with a nickname full of Markdown and HTML); everyone votes, the teacher sees 3 votes; "Vote
again" starts round 2, where one participant changes its vote (still 3 votes); Reveal (the lesson runs
then); every participant sees its own vote marked right or wrong against the measured answer, and the
lesson's results. The Markdown-named participant then shares its experiment from the Experiment page:
the teacher's list shows its nickname as the characters typed. Screenshots (look at them): the teacher's projector view
(1600×1400) and a participant's phone (390×844), in test-results/.

Separate contexts are separate browsers as far as the server can tell: no shared cookies or storage.
HEADLAB_BROWSER_PORT, when set, is the port the app is started on (else a free one).
"""

from __future__ import annotations

import os
import re

import pytest
from browser_kit import ROOT, app_server, chromium

SHOTS = ROOT / "test-results"
LESSON = "softmax-one-unit"  # the lesson test_browser.py runs too: its features are on disk by then
PROJECTOR = {"width": 1600, "height": 1400}
PHONE = {"width": 390, "height": 844}
MD_NICK = "**Bo** <b>hi</b> [x](//e.io)"  # Markdown and HTML (<= 30 characters): must show as these characters
WAIT = 60_000  # ms: generous for a loaded 2-core machine; the test waits for states, never times them


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = int(os.environ.get("HEADLAB_BROWSER_PORT", "0")) or None  # a developer's own port range
    with app_server(tmp_path_factory.mktemp("server") / "streamlit.log", port=port) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _main(page):
    return page.locator("[data-testid=stMain]")


def _voted(page, votes: int, joined: int, rnd: int) -> None:
    """Wait for the teacher's live caption, redrawn by its own fragment timer."""
    _main(page).get_by_text(f"{votes} of {joined} have voted (round {rnd})").wait_for(timeout=WAIT)


def _vote(page, choice: str, rnd: int) -> None:
    # the buttons carry the projector's letters: "C. Its loss falls, …"
    _main(page).get_by_role("button", name=re.compile(rf"^[A-E]\. {re.escape(choice)}$")).click(timeout=WAIT)
    _main(page).get_by_text(re.compile(rf"Your vote in round {rnd}: [A-E]\. {re.escape(choice)}")).wait_for(timeout=WAIT)


def _join_from_home(page, server: str, code: str, nickname: str) -> None:
    page.goto(server)
    box = page.get_by_label("Room code")
    box.fill(code.lower())  # typed the way people type: lower case is fine
    box.press("Enter")
    page.get_by_role("button", name="Join room").click(timeout=WAIT)
    _join_room(page, nickname)


def _join_room(page, nickname: str) -> None:
    nick = page.get_by_label("Nickname (optional)")
    nick.wait_for(timeout=WAIT)
    if nickname:
        nick.fill(nickname)
        nick.press("Enter")
    page.get_by_role("button", name="Join", exact=True).click(timeout=WAIT)
    page.get_by_text("Waiting for the teacher").wait_for(timeout=WAIT)


def _share_from_experiment(page, code: str) -> None:
    """Open the Experiment page by the sidebar (on a phone: opened first) and share the experiment."""
    expand = page.locator("[data-testid=stExpandSidebarButton]")  # a phone starts with the sidebar closed
    if expand.get_attribute("aria-expanded") != "true":
        expand.click(timeout=WAIT)
    sidebar = page.locator("[data-testid=stSidebar]")
    sidebar.get_by_role("link", name="Experiment").click(timeout=WAIT)
    share = page.get_by_role("button", name="Share my experiment with the room")
    share.wait_for(timeout=WAIT)
    if sidebar.get_attribute("data-collapsed") == "false":  # on a phone it stays open, over the page
        sidebar.locator("[data-testid=stSidebarCollapseButton] button").click(timeout=WAIT)
    share.click(timeout=WAIT)
    page.get_by_text(f"Shared with room {code}.").wait_for(timeout=WAIT)


def test_a_room_votes_twice_and_sees_the_measured_answer(server, browser):
    from lib.lessons import get_lesson

    SHOTS.mkdir(exist_ok=True)
    quiz = get_lesson(LESSON).quiz
    texts = [c.text for c in quiz.choices]
    right = next(c.text for c in quiz.choices if c.correct)
    wrong = next(t for t in texts if t != right)
    contexts = [browser.new_context(viewport=PROJECTOR)] + [browser.new_context(viewport=PHONE) for _ in range(3)]
    try:
        teacher, ada, bo, cy = (ctx.new_page() for ctx in contexts)
        for ctx in contexts:
            ctx.set_default_timeout(WAIT)

        # the teacher opens a room from the lesson (Reveal runs it, or takes it from the server's cache)
        teacher.goto(f"{server}/lessons?lesson={LESSON}")
        teacher.get_by_role("button", name="Teach this to a room").click(timeout=WAIT)
        _voted(teacher, 0, 0, 1)
        link = re.search(r"https?://\S+\?code=([A-Z0-9]{6})", _main(teacher).locator("[data-testid=stCode]").first
                         .inner_text().replace("\n", ""))
        assert link, "the teacher's page shows no join link with a code"
        code = link.group(1)
        assert code in _main(teacher).inner_text()  # the code itself, large, for those who type it

        _join_from_home(ada, server, code, "Ada")
        bo.goto(link.group(0))  # the join link as the teacher's page shows it (and its QR code holds)
        _join_room(bo, MD_NICK)
        _join_from_home(cy, server, code, "")
        _main(teacher).get_by_text("3 joined").wait_for(timeout=WAIT)

        # no results before the reveal: no measured answer, no charts on a participant's page
        assert _main(ada).get_by_text("The measured answer:").count() == 0
        assert ada.locator(".js-plotly-plot").count() == 0

        # round 1: everyone alone
        picks1 = {ada: right, bo: wrong, cy: wrong}
        for page, choice in picks1.items():
            _vote(page, choice, 1)
        _voted(teacher, 3, 3, 1)
        teacher.screenshot(path=str(SHOTS / "room-teacher-voting.png"))
        ada.screenshot(path=str(SHOTS / "room-phone-voted.png"))

        # round 2, after discussion: Cy votes as before, then changes its vote: it replaces its own, never adds
        teacher.get_by_role("button", name="Vote again").click(timeout=WAIT)
        _voted(teacher, 0, 3, 2)
        for page, choice in picks1.items():
            _vote(page, choice, 2)
        _voted(teacher, 3, 3, 2)
        _vote(cy, right, 2)
        picks2 = {ada: right, bo: wrong, cy: right}
        _voted(teacher, 3, 3, 2)

        teacher.get_by_role("button", name="Reveal").click(timeout=WAIT)
        _main(teacher).get_by_text("The measured answer:").first.wait_for(timeout=180_000)  # Reveal runs the lesson
        measured = None
        for page, choice in picks2.items():
            answer = _main(page).get_by_text("The measured answer:").first
            answer.wait_for(timeout=WAIT)
            line = answer.inner_text()
            named = [t for t in texts if t in line]
            assert named, f"the measured answer names no choice: {line!r}"
            measured = max(named, key=len)
            mark = _main(page).get_by_text(re.compile(r"Your vote.*\b(right|wrong)\b")).first
            mark.wait_for(timeout=WAIT)
            want = "right" if choice == measured else "wrong"
            assert re.search(rf"\b{want}\b", mark.inner_text()), (choice, measured, mark.inner_text())
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT)  # the lesson's results
        assert measured == right  # the measurement supports the choice the lesson marks correct

        # Bo shares its experiment (in the same session: the app's own navigation, not a new page load);
        # its nickname is text on the teacher's list: its characters, no bold, no HTML element, no link
        _share_from_experiment(bo, code)
        shared = _main(teacher).locator("[data-testid=stText]").filter(has_text=MD_NICK)
        shared.first.wait_for(timeout=WAIT)
        assert _main(teacher).locator("b", has_text="hi").count() == 0
        assert _main(teacher).locator("a[href*='e.io']").count() == 0
        assert _main(teacher).locator("strong", has_text="Bo").count() == 0
        shared.first.scroll_into_view_if_needed()
        teacher.screenshot(path=str(SHOTS / "room-teacher-shared.png"))
        teacher.wait_for_timeout(1500)  # the charts drawn
        _main(teacher).get_by_text("The measured answer:").first.evaluate(  # the reveal at the top of the screen
            "el => el.closest('[data-testid=stHorizontalBlock]').scrollIntoView({block: 'start'})")
        teacher.screenshot(path=str(SHOTS / "room-teacher-revealed.png"))
        cy.wait_for_timeout(500)
        cy.screenshot(path=str(SHOTS / "room-phone-revealed.png"))
        for page in (teacher, ada, bo, cy):  # no exception box, no error alert, on any page
            assert page.locator("[data-testid=stException]").count() == 0
    finally:
        for ctx in contexts:
            ctx.close()
