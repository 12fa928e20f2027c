"""Room: a class votes on a lesson's question, then sees the measured answer.

The teacher's view (the session holding the room's secret) is meant for the projector: the question, the
join code, link and QR code, live vote counts, and Vote again / Reveal / Next lesson. Everyone else is a
participant: join, vote, wait, and after the reveal see the results with their vote marked. The live
parts are fragments that redraw themselves every second; a change of the room's state (a new round,
the reveal, the next lesson) reruns the whole page once.
"""

from __future__ import annotations

import html

import streamlit as st

from lib.classroom.store import RoomError
from lib.common.errors import HeadLabError
from lib.common.text import md_escape, md_message
from lib.lessons import LESSONS
from lib.workshop import (
    experiment_for,
    join_link,
    lesson_for,
    lesson_subject,
    letter,
    link_is_local,
    question_for,
    rounds_summary,
    teacher_link,
    title_for,
    vote_figure,
)
from lib.workshop import next_subject as following_subject
from lib.workshop import reveal as reveal_room
from ui.components import (
    ensure_app_navigation,
    keep_keras_state,
    projector_css,
    projector_on,
    render_results,
)
from ui.room import (
    ME,
    PUBLIC_URL_ENV,
    base_url,
    keep_secret,
    participant_id,
    room_store,
    shared_result,
    teacher_secret,
)
from ui.seeds import render_seed_spread, train_seeds_with_progress

ensure_app_navigation()
keep_keras_state()  # app.py does this for the server; here for pages run alone (tests)
ss = st.session_state
projector_css()
LIVE_SECONDS = 1.0  # how often the live parts redraw: a vote reaches the projector within about a second
try:
    store = room_store()
except HeadLabError as e:  # e.g. HEADLAB_DB_URL names a database this server cannot reach
    st.error(md_message(e))
    st.stop()


def _state(room) -> tuple:
    """What the whole page is drawn from: when it changes, the page reruns (not just a fragment)."""
    return room.subject, room.state, room.round


def _open_room_form(message: str | None = None) -> None:
    """No usable code in the link: one line saying why, and a box to type the code into."""
    if message:
        st.error(md_message(message))
    row = st.container(horizontal=True, vertical_alignment="bottom")
    typed = row.text_input("Room code", key="room-code-entry", placeholder="e.g. ABC234", max_chars=12)
    if row.button("Join room", key="room-code-go", type="primary") and typed.strip():
        st.query_params["code"] = typed.strip()
        st.rerun()


code_param = st.query_params.get("code", "")
if not code_param:
    st.title("Room")
    st.caption("Open a room by the link or QR code your teacher shows, or type its code.")
    _open_room_form()
    st.stop()
try:
    room = store.room(code_param)
except RoomError as e:
    st.title("Room")
    _open_room_form(str(e))
    st.stop()
code = room.code

# The secret teacher link gives this session the room's controls, then leaves the address bar: a
# projected address bar would hand them to the whole class.
link_secret = st.query_params.get("teacher")
if link_secret:
    if store.is_teacher(code, link_secret):
        keep_secret(code, link_secret)
    else:
        st.error("This teacher link is not this room's (its secret does not match): you are in the room as a participant.")
    del st.query_params["teacher"]
st.query_params["code"] = code  # normalised: 'abc 234' becomes ABC234
secret = teacher_secret(code)
teaching = bool(secret) and store.is_teacher(code, secret)

try:
    question = question_for(room.subject)
except HeadLabError as e:
    st.error(md_message(e))
    question = None


def _choice_line(i: int) -> str:
    return f"**{letter(i)}.** {md_escape(question.choices[i].text)}"


def _result():
    """The subject's trained result for the reveal: from this session, else from the server's shared
    sweep cache (whoever trained it first, usually the teacher at Reveal), training only if nobody has."""
    held = ss.get("room_result")
    if held and held[0] == (code, room.subject):
        rep, shared = held[1], held[2]
    else:
        exp = experiment_for(room.subject)
        try:
            rep = shared_result(exp)
        except HeadLabError as e:
            st.error(md_message(e))
            return None
        shared = rep is not None
        if rep is None:  # not on this server yet (another process trained it, or it left the cache): train it once
            rep = train_seeds_with_progress(exp, key="room")
        if rep is not None:
            ss["room_result"] = ((code, room.subject), rep, shared)
    if shared:
        st.caption("These results come from the server's shared cache: the run that decided the answer, not retrained.")
    return rep


def _rounds() -> dict[int, list[int]]:
    return {r: store.counts(code, r) for r in range(1, room.round + 1)}


def _answer_lines(verdict: str = "") -> None:
    """After the reveal: the measured answer (and `verdict`: the participant's vote marked), what was
    measured, and how each round voted."""
    answer = room.answer
    with st.container(key="room-answer"):  # larger: read from the back of the room
        st.html("<style>.st-key-room-answer [data-testid=stMarkdownContainer] p {font-size: 1.3rem !important}</style>")
        if answer is None:
            st.markdown("The measured answer: **none of the choices** — this run does not decide.")
        else:
            st.markdown(f"The measured answer: {_choice_line(answer)}")
        if verdict:
            st.markdown(verdict)
        st.caption(md_escape(room.answer_note))
        st.caption(md_escape(rounds_summary(_rounds(), answer)))


def _substitution() -> None:
    """What this server changed from a seed article's set-up (its backbone's weights missing, the size):
    said before anyone votes, since the question is about what *this* run will show."""
    lesson = lesson_for(room.subject) if question is not None else None
    if getattr(lesson, "substitution", ""):
        st.info(md_escape(lesson.substitution), icon=":material/swap_horiz:")


def _results(spread_on_request: bool = False) -> None:
    """After the reveal: the lesson's finding and results, as the Lessons page shows them.
    `spread_on_request`: the seed spread only behind a toggle (participants' phones: its band charts and
    table were 40% of the server's work when 30 pages drew their results at the reveal, bench/load.py)."""
    lesson = lesson_for(room.subject)
    rep = _result()
    if rep is None:
        return
    if lesson is not None:
        st.success(f"**What we measured:** {lesson.finding.removeprefix('Measured: ')}", icon=":material/lab_research:")
    st.divider()
    render_results(rep.first, key="room")
    if len(rep.sweeps) > 1 and spread_on_request and not st.toggle(
            f"Show the spread over {len(rep.sweeps)} seeds", key="room-spread"):
        return
    render_seed_spread(rep, key="room")


# ---- the teacher's view -----------------------------------------------------------------------------
def _big_code() -> None:
    # The code is ours (codes.py: capitals and digits only); escaped all the same.
    st.html(f"<div style='font-size:3.6rem;font-weight:800;letter-spacing:0.08em;line-height:1.1;"
            f"font-family:monospace'>{html.escape(code)}</div>")


@st.fragment(run_every=LIVE_SECONDS)
def teacher_live(drawn: tuple) -> None:
    """Joined, voted, and the bar chart of this round's votes: no bar marks the right answer."""
    now = store.room(code)
    if _state(now) != drawn:
        st.rerun()
    counts = store.counts(code, now.round)
    n = store.n_joined(code)
    st.subheader(f"{n} joined")
    st.caption(f"{sum(counts)} of {n} have voted (round {now.round})")
    st.plotly_chart(vote_figure(now.n_choices, {now.round: counts}, large=projector_on()), key="room-votes",
                    config={"displaylogo": False, "staticPlot": True})


@st.fragment(run_every=2 * LIVE_SECONDS)
def shared_list(drawn: tuple) -> None:
    """What participants shared from their Experiment page: nickname and summary as text, and buttons.
    (Also notices the room changing under a revealed page, e.g. from the teacher link in another tab.)"""
    if _state(store.room(code)) != drawn:
        st.rerun()
    items = store.shared(code)
    if not items:
        st.caption("Participants can press 'Share my experiment with the room' on their Experiment page; "
                   "what they share is listed here.")
        return
    for i, item in enumerate(reversed(items)):
        with st.container(border=True):
            st.text(f"{item.nickname or 'Someone'}: {item.summary}")  # typed by participants: text, never Markdown
            row = st.container(horizontal=True)
            row.button("Open on the projector", key=f"room-open-{i}", icon=":material/tune:",
                       on_click=ss.__setitem__, args=("room_open", item.query))
            subject = f"experiment:{item.query}"
            heads = len(experiment_for(subject).heads)
            row.button("Ask the room about it", key=f"room-ask-{i}", icon=":material/how_to_vote:",
                       on_click=_next, args=(subject,), disabled=heads < 2,
                       help="Its question: which head ends best." if heads >= 2 else
                       "It has one head: there is nothing to compare.")
    if "room_open" in ss or "room_error" in ss:
        st.rerun()  # the whole page: it switches to the Experiment page, or shows the error (see teacher_view)


def _vote_again() -> None:
    try:
        store.vote_again(code, secret)
    except HeadLabError as e:
        ss["room_error"] = str(e)


def _next(subject: str | None) -> None:
    if subject is None:
        return
    try:
        store.next_subject(code, secret, subject, len(question_for(subject).choices))
    except HeadLabError as e:
        ss["room_error"] = str(e)


def teacher_view() -> None:
    if "room_open" in ss:  # "Open on the projector": the shared experiment on the Experiment page
        from urllib.parse import parse_qs

        ss["load_from_url"] = True  # the Experiment page reads the link's experiment, not its last one
        st.switch_page("pages/experiment.py", query_params=parse_qs(ss.pop("room_open"), keep_blank_values=True))
    lesson = lesson_for(room.subject) if question is not None else None
    article = f" · from the seed article {md_escape(lesson.article)}" if getattr(lesson, "article", "") else ""
    st.caption(f"Room {code} · {md_escape(title_for(room.subject)) if question else ''}{article}")
    if question is not None:
        st.header(md_escape(question.prompt))
    _substitution()
    left, right = st.columns([1.4, 1], gap="medium")
    with right:
        link = join_link(base_url(), code)
        st.markdown("Join at")
        st.code(link, language=None, wrap_lines=True)
        _big_code()
        from lib.classroom.qr import join_qr

        qr = join_qr(link)
        st.image(qr.png, width=qr.pixels, caption="Scan to join")
        if link_is_local(link):
            st.warning(f"This link names this computer only: phones cannot open it. Open Head Lab by this "
                       f"machine's network address, or start the server with {PUBLIC_URL_ENV} set to it.",
                       icon=":material/wifi_off:")
    with left:
        if question is not None:
            with st.container(key="room-choices"):
                st.html("<style>.st-key-room-choices [data-testid=stMarkdownContainer] p {font-size: 1.3rem !important}</style>")
                for i in range(len(question.choices)):
                    measured = room.state == "revealed" and i == room.answer  # never before the reveal
                    st.markdown(_choice_line(i) + (" :green[**✓ measured**]" if measured else ""))
        if room.state == "voting":
            teacher_live(_state(room))
        else:  # round 1 vs round 2 vs the measured answer, where the live counts were
            st.plotly_chart(vote_figure(room.n_choices, _rounds(), room.answer, large=projector_on()),
                            key="room-rounds", config={"displaylogo": False, "staticPlot": True})
            _answer_lines()
    row = st.container(horizontal=True)
    try:
        after = following_subject(room.subject)
    except HeadLabError:  # a subject this version cannot read: start again from the first lesson
        after = lesson_subject(LESSONS[0].id)
    row.button("Vote again", key="room-vote-again", icon=":material/replay:", on_click=_vote_again,
               disabled=room.state != "voting" or room.round >= 2,
               help="Round 2: after the class has discussed with a neighbour, everyone votes again.")
    reveal = row.button("Reveal", key="room-reveal", type="primary", icon=":material/visibility:",
                        disabled=room.state != "voting" or question is None,
                        help="Runs the lesson (or takes its result from the server's cache) and shows everyone the "
                             "measured answer.")
    row.button(f"Next lesson: {title_for(after)}" if after else "Next lesson", key="room-next",
               icon=":material/arrow_forward:", disabled=after is None, on_click=_next, args=(after,))
    if "room_error" in ss:
        st.error(md_message(ss.pop("room_error")))
    if reveal:
        rep = _result()  # trained before the room flips, so every participant finds it in the cache
        if rep is not None:
            try:
                reveal_room(store, code, secret, rep)
            except HeadLabError as e:
                st.error(md_message(e))
            else:
                st.rerun()
    if room.state == "revealed":
        _results()
    st.divider()
    st.subheader("Shared by the room")
    shared_list(_state(room))
    with st.expander("Teacher link (keep it private)"):
        st.caption("Opens this room's controls in any browser (another device, or after closing this tab). "
                   "Anyone with it can run the room, so do not show it on the projector.")
        st.code(teacher_link(base_url(), code, secret), language=None, wrap_lines=True)


# ---- the participant's view -------------------------------------------------------------------------
def _my_vote(r: int) -> int | None:
    return store.my_vote(code, participant_id(), r)


def _vote(i: int) -> None:
    """A vote button's callback: it runs before the fragment redraws, so the buttons show the new vote."""
    try:
        store.vote(code, participant_id(), i)
    except HeadLabError as e:
        ss["room_vote_error"] = str(e)


@st.fragment(run_every=LIVE_SECONDS)
def participant_live(drawn: tuple) -> None:
    """The choices as buttons (a second click replaces the vote), the vote cast, and the wait."""
    now = store.room(code)
    if _state(now) != drawn:
        st.rerun()
    mine = _my_vote(now.round)
    for i, choice in enumerate(question.choices):
        st.button(md_escape(choice.text), key=f"vote-{i}", width="stretch", on_click=_vote, args=(i,),
                  type="primary" if mine == i else "secondary")
    if "room_vote_error" in ss:
        st.error(md_message(ss.pop("room_vote_error")))
    if mine is None:
        st.caption(f"You have not voted in round {now.round} yet.")
    else:
        st.caption(f"Your vote in round {now.round}: {letter(mine)}. {md_escape(question.choices[mine].text)}")
    st.caption("Waiting for the teacher…")


@st.fragment(run_every=LIVE_SECONDS)
def participant_wait(drawn: tuple) -> None:
    """After the reveal: nothing to redraw, only to notice the teacher moving on."""
    if _state(store.room(code)) != drawn:
        st.rerun()


def participant_view() -> None:
    pid = participant_id()
    nickname = store.nickname(code, pid)
    if nickname is None:
        st.subheader(f"Join room {code}")
        st.text_input("Nickname (optional)", key="room-nickname", max_chars=30,
                      placeholder="shown to the teacher if you share an experiment")
        if st.button("Join", key="room-join", type="primary", icon=":material/login:"):
            try:
                store.join(code, pid, ss.get("room-nickname", ""))
            except HeadLabError as e:
                st.error(md_message(e))
                return
            ss["room_code"] = code
            st.rerun()
        return
    ss["room_code"] = code
    st.query_params[ME] = pid  # a reload (a new session) stays this participant, with its vote
    st.caption(f"Room {code}" + (" · you are " if nickname else "") + md_escape(nickname))
    if question is None:
        participant_wait(_state(room))
        return
    st.markdown(f"#### {md_escape(question.prompt)}")
    _substitution()
    if room.state == "voting":
        participant_live(_state(room))
        return
    participant_wait(_state(room))
    mine, voted_round = None, None
    for r in range(room.round, 0, -1):  # the last vote this participant cast
        mine = _my_vote(r)
        if mine is not None:
            voted_round = r
            break
    if mine is None:
        verdict = "You did not vote."
    elif room.answer is None:
        verdict = f"Your vote in round {voted_round}, {letter(mine)}, was neither right nor wrong: the run did not decide."
    else:
        verdict = (f"Your vote in round {voted_round}, {_choice_line(mine)}, was "
                   + (":green[**right** :material/check_circle:]" if mine == room.answer else ":red[**wrong** :material/cancel:]"))
    _answer_lines(verdict)
    _results(spread_on_request=True)


if teaching:
    teacher_view()
else:
    participant_view()
