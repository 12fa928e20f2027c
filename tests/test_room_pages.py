"""The Room page with AppTest: a teacher runs a lesson's question in a room, participants join and vote.

Each AppTest is one browser session; they share the room database (SQLite under the tests' temporary
HEADLAB_CACHE) and the server's sweep cache, as the sessions of one server do. AppTest runs the whole
script on every `run()`, fragments included (their `run_every` timer only matters to a browser), so a
`run()` is what a participant's or the teacher's page shows at its next redraw.
"""

from __future__ import annotations

import json

import pytest
from conftest import visible
from streamlit.testing.v1 import AppTest

from lib.classroom.store import RoomError, open_store
from lib.experiment import Experiment
from lib.heads.config import default_head
from lib.workshop import experiment_subject, lesson_subject, question_for

TIMEOUT = 240
LESSON = "softmax-one-unit"  # two heads on shirts: its question's measured answer is the sigmoid head's


def room_page(code: str, session: dict | None = None, **query) -> AppTest:
    at = AppTest.from_file("../pages/room.py", default_timeout=TIMEOUT)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.query_params.update({"code": code, **query})
    return at.run()


def captions(at: AppTest) -> list[str]:
    return [visible(c.value) for c in at.caption]


def markdowns(at: AppTest) -> list[str]:
    return [visible(m.value) for m in at.markdown]


def vote_chart(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    assert charts, f"no chart {key}"
    return json.loads(charts[0].proto.spec)


def teacher_of(code: str, secret: str) -> AppTest:
    return room_page(code, {"room_secrets": {code: secret}})


def join(code: str, nickname: str = "") -> AppTest:
    at = room_page(code.lower())  # as typed on a phone: the page normalises it
    assert not at.exception, at.exception
    at.text_input(key="room-nickname").input(nickname)
    at.button(key="room-join").click().run()
    assert not at.exception, at.exception
    return at


def test_a_room_from_a_lesson_through_two_rounds_and_the_reveal(monkeypatch):
    # The teacher presses "Teach this to a room" on the lesson, in the app (the button switches pages).
    teacher = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    teacher.session_state["lesson"] = LESSON
    teacher.run()
    teacher.switch_page("pages/lessons.py").run()
    assert not teacher.exception, teacher.exception
    teacher.button(key="teach-room").click().run()
    assert not teacher.exception, teacher.exception
    (code, secret), = teacher.session_state["room_secrets"].items()
    assert teacher.session_state["projector"] is True  # large text for the projector, by default
    assert teacher.query_params["code"] == code
    question = question_for(lesson_subject(LESSON))
    assert any(c.startswith(f"Room {code}") for c in captions(teacher))
    assert "0 joined" in [s.value for s in teacher.subheader]
    assert "0 of 0 have voted (round 1)" in captions(teacher)
    assert [img.captions for img in teacher.image] == [["Scan to join"]]  # the QR code (tests/test_room_qr.py)
    assert f"http://localhost:8501/room?code={code}" in [c.value for c in teacher.code]  # no browser: the default
    for key in ("room-vote-again", "room-reveal", "room-next"):
        assert not teacher.button(key=key).disabled, key
    # From here on the room page on its own (AppTest would rerun the page it last switched to by hand),
    # in a session that holds what the teacher's holds.
    teacher = room_page(code, {k: teacher.session_state[k] for k in ("room_secrets", "projector")})

    # Two participants join by the code and vote: the right answer and a wrong one.
    right = next(i for i, c in enumerate(question.choices) if c.correct)
    wrong = (right + 1) % len(question.choices)
    ana, ben = join(code, "Ana"), join(code, "")
    for at in (ana, ben):
        assert "Waiting for the teacher…" in captions(at)
        assert [b.key for b in at.button if b.key.startswith("vote-")] == [f"vote-{i}" for i in range(len(question.choices))]
        assert not at.get("plotly_chart") and not any(m.startswith("The measured answer") for m in markdowns(at))
    ana.button(key=f"vote-{wrong}").click().run()  # first thought…
    ana.button(key=f"vote-{right}").click().run()  # …replaced: one vote per round
    ben.button(key=f"vote-{wrong}").click().run()
    assert f"Your vote in round 1: {'ABCDEF'[right]}. {question.choices[right].text}" in captions(ana)
    # A reload is a new Streamlit session: the page's address (`me=`) keeps it the same participant.
    reloaded = room_page(code, me=ana.query_params["me"])
    assert f"Your vote in round 1: {'ABCDEF'[right]}. {question.choices[right].text}" in captions(reloaded)
    assert not any(b.key == "room-join" for b in reloaded.button)
    reloaded.button(key=f"vote-{right}").click().run()  # the same vote again: still one
    teacher.run()
    assert "2 joined" in [s.value for s in teacher.subheader]
    assert "2 of 2 have voted (round 1)" in captions(teacher)
    chart = vote_chart(teacher, "room-votes")
    expected = [0] * len(question.choices)
    expected[right] += 1
    expected[wrong] += 1
    assert chart["data"][0]["x"] == expected
    # nothing marks the right answer before the reveal: no label, colour or text sets one bar apart
    assert chart["data"][0]["y"] == list("ABCDEF"[:len(question.choices)])
    assert "measured" not in json.dumps(chart) and len(chart["data"]) == 1
    assert not any("measured" in m or "✓" in m for m in markdowns(teacher))  # the list marks nothing either

    # Vote again: round 2, where Ben changes his mind.
    teacher.button(key="room-vote-again").click().run()
    assert "0 of 2 have voted (round 2)" in captions(teacher)
    assert teacher.button(key="room-vote-again").disabled  # two rounds: ask, discuss, ask again
    ben.run()
    assert "You have not voted in round 2 yet." in captions(ben)
    ben.button(key=f"vote-{right}").click().run()
    teacher.run()
    assert "1 of 2 have voted (round 2)" in captions(teacher)

    # Reveal: the lesson trains (or comes from the cache), then the room flips.
    teacher.button(key="room-reveal").click().run()
    assert not teacher.exception, teacher.exception
    room = open_store().room(code)
    assert room.state == "revealed" and room.answer == right, (room, [e.value for e in teacher.error])
    answer_line = next(m for m in markdowns(teacher) if m.startswith("The measured answer:"))
    assert question.choices[right].text in answer_line
    rounds = vote_chart(teacher, "room-rounds")  # round 1 vs round 2, the measured answer marked
    assert [t["name"] for t in rounds["data"]] == ["round 1", "round 2"]
    assert [t["x"] for t in rounds["data"]] == [expected, [int(i == right) for i in range(len(question.choices))]]
    assert rounds["data"][0]["y"][right] == f"{'ABCDEF'[right]} ✓ measured"
    summary = next(c for c in captions(teacher) if c.startswith("Round 1:"))
    assert "Round 1: 1 of 2 votes (50%)" in summary and "Round 2: 1 of 1 votes (100%)" in summary
    assert any(s.value.startswith("**What we measured:**") for s in teacher.success)
    assert len(teacher.get("plotly_chart")) >= 4  # the rounds, and the lesson's loss, metric, gradient charts
    assert teacher.button(key="room-reveal").disabled

    # Every participant's page: the answer, its own vote marked, and the results from the shared cache.
    def no_training(*args, **kwargs):
        raise AssertionError("a participant's page trained the lesson again")

    monkeypatch.setattr("lib.train.trainer.train", no_training)
    ana.run()
    ben.run()
    for at, verdict in ((ana, "right"), (ben, "right")):
        assert not at.exception, at.exception
        lines = markdowns(at)
        assert any(m.startswith("The measured answer:") for m in lines)
        assert any(m.startswith("Your vote in round") and f"was :green[{verdict}" in m for m in lines), lines
        assert any(c.startswith("These results come from the server's shared cache") for c in captions(at))
        assert len(at.get("plotly_chart")) == 3  # loss, metric, gradient; the seed bands on request
        at.toggle(key="room-spread").set_value(True).run()
        assert any(h.value.startswith("Over 3 seeds") for h in at.subheader) and len(at.get("plotly_chart")) == 5
    assert any(m.startswith(f"Your vote in round 1, {'ABCDEF'[right]}.") for m in markdowns(ana))
    assert any(m.startswith(f"Your vote in round 2, {'ABCDEF'[right]}.") for m in markdowns(ben))

    # Next lesson: a new question, round 1, and the participants follow.
    teacher.button(key="room-next").click().run()
    room = open_store().room(code)
    assert (room.state, room.round) == ("voting", 1) and room.subject != lesson_subject(LESSON)
    ben.run()
    assert "Waiting for the teacher…" in captions(ben) and not ben.get("plotly_chart")


def test_a_wrong_vote_is_marked_wrong():
    store = open_store()
    room, secret = store.create_room(lesson_subject(LESSON), len(question_for(lesson_subject(LESSON)).choices))
    question = question_for(room.subject)
    wrong = next(i for i, c in enumerate(question.choices) if not c.correct)
    cara = join(room.code, "Cara")
    cara.button(key=f"vote-{wrong}").click().run()
    teacher = teacher_of(room.code, secret)
    teacher.button(key="room-reveal").click().run()
    cara.run()
    assert any(m.startswith(f"Your vote in round 1, {'ABCDEF'[wrong]}.") and "was :red[wrong" in m
               for m in markdowns(cara)), markdowns(cara)


def test_only_joined_sessions_vote_and_only_the_teacher_runs_the_room():
    store = open_store()
    room, secret = store.create_room(lesson_subject(LESSON), len(question_for(lesson_subject(LESSON)).choices))
    stranger = room_page(room.code)
    assert not [b for b in stranger.button if b.key.startswith("vote-")]  # the Join button first
    with pytest.raises(RoomError):
        store.vote(room.code, stranger.session_state["room_pid"], 0)  # the store refuses it too
    assert store.counts(room.code, 1) == [0] * room.n_choices

    # the room code alone never gives control: a participant, and a forged teacher link, get no controls
    member = join(room.code)
    forged = room_page(room.code, teacher="not-the-secret")
    for at in (member, stranger, forged):
        assert not any(b.key in ("room-vote-again", "room-reveal", "room-next") for b in at.button)
    assert any("This teacher link is not this room's" in e.value for e in forged.error)
    with pytest.raises(RoomError):
        store.reveal(room.code, "not-the-secret", 0, "")
    # the real teacher link gives the controls, and leaves the address bar
    teacher = room_page(room.code, teacher=secret)
    assert not teacher.exception and not teacher.button(key="room-reveal").disabled
    assert "teacher" not in teacher.query_params and teacher.session_state["room_secrets"] == {room.code: secret}


@pytest.mark.parametrize("code", ["ZZZZZZ", "not a code!", "ab"])
def test_an_unknown_or_mistyped_code_is_one_line(code):
    at = room_page(code)
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value and at.error[0].value
    assert at.text_input(key="room-code-entry")  # and a box to type the right one


def test_home_joins_a_room_by_its_code():
    store = open_store()
    room, _ = store.create_room(lesson_subject(LESSON), len(question_for(lesson_subject(LESSON)).choices))
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    at.text_input(key="home-room-code").input("nope00")
    at.button(key="home-join").click().run()
    assert not at.exception and len(at.error) == 1
    at.text_input(key="home-room-code").input(f" {room.code.lower()} ")
    at.button(key="home-join").click().run()
    assert not at.exception, at.exception
    assert at.query_params["code"] == room.code
    assert at.button(key="room-join")  # on the Room page, with the nickname box
    assert at.text_input(key="room-nickname")


def test_nicknames_and_shared_experiments_stay_text():
    """A nickname and a head name full of Markdown reach the teacher as the characters typed."""
    store = open_store()
    room, secret = store.create_room(lesson_subject(LESSON), len(question_for(lesson_subject(LESSON)).choices))
    nick = "**Bo** [x](http://e.vil)"
    bo = join(room.code, nick)
    assert any(c.endswith(f"you are {nick}") for c in captions(bo)), captions(bo)
    assert not any("<" in m or "](" in m.replace(nick, "") for m in markdowns(bo))

    head_name = "![img](http://e.vil/x.png) :material/warning:"
    exp = Experiment(dataset="shirts", epochs=2, heads=(default_head("binary", name=head_name),
                                                        default_head("binary", activation="softmax", units=2,
                                                                     loss="sparse_categorical_crossentropy")))
    page = AppTest.from_file("../pages/experiment.py", default_timeout=TIMEOUT)
    page.session_state["room_code"], page.session_state["room_pid"] = room.code, bo.session_state["room_pid"]
    page.query_params.update(exp.to_query())
    page.run()
    page.button(key="room-share").click().run()
    assert not page.exception and any(s.value.startswith(f"Shared with room {room.code}") for s in page.success)

    teacher = teacher_of(room.code, secret)
    shared = [t.value for t in teacher.text]
    assert any(t.startswith(f"{nick}: 2 heads on shirts") and head_name in t for t in shared), shared
    assert not any(head_name in m or "e.vil" in m for m in [m.value for m in teacher.markdown])
    assert teacher.button(key="room-open-0") and teacher.button(key="room-ask-0")

    # "Open on the projector": the teacher's Experiment page, with the shared experiment
    projector = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    projector.session_state["room_secrets"] = {room.code: secret}
    projector.run()
    projector.switch_page("pages/room.py")
    projector.query_params["code"] = room.code
    projector.run()
    projector.button(key="room-open-0").click().run()
    assert not projector.exception, projector.exception
    assert projector.session_state["exp"] == exp


def test_a_teacher_asks_the_room_about_an_experiment():
    exp = Experiment(dataset="shirts", epochs=2, input_size=96, heads=(
        default_head("binary"), default_head("binary", activation="softmax", units=1)))
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT).run()
    at.switch_page("pages/experiment.py")
    at.query_params.update(exp.to_query())
    at.run()
    assert not at.exception, at.exception
    at.button(key="teach-room").click().run()
    assert not at.exception, at.exception
    (code, secret), = at.session_state["room_secrets"].items()
    room = open_store().room(code)
    assert room.subject == experiment_subject(at.session_state["exp"]) and room.n_choices == 3  # two heads and the tie
    assert any(h.value.startswith("Which head will end with the best validation accuracy") for h in at.header)
    at = teacher_of(code, secret)
    at.button(key="room-reveal").click().run()
    room = open_store().room(code)
    assert room.answer == 0, room.answer_note  # softmax over one unit is stuck at the share of shirts
    assert "the run bears out A" in room.answer_note


def test_a_seed_article_lesson_says_what_this_server_changed_before_the_vote():
    from lib.lessons import get_lesson

    lesson = get_lesson("article-resnet50-sigmoid")
    assert lesson.article and lesson.substitution  # the suite's Keras cache has no ResNet50 weights
    lessons = AppTest.from_file("../pages/lessons.py", default_timeout=TIMEOUT)
    lessons.query_params["lesson"] = lesson.id
    lessons.run()
    assert f"From the seed article: {lesson.article}" in captions(lessons)
    assert [visible(i.value) for i in lessons.info] == [lesson.substitution]

    store = open_store()
    room, secret = store.create_room(lesson_subject(lesson.id), len(lesson.quiz.choices))
    for at in (teacher_of(room.code, secret), join(room.code)):
        assert visible(at.info[0].value) == lesson.substitution, at  # above the choices, before any vote
    assert any(lesson.article in c for c in captions(teacher_of(room.code, secret)))


def test_the_secret_teacher_link_opens_the_controls_in_large_text():
    store = open_store()
    room, secret = store.create_room(lesson_subject(LESSON), len(question_for(lesson_subject(LESSON)).choices))
    # app.py turns projector mode on for a teacher link (the sidebar toggle, which the teacher may turn off)
    app = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    app.query_params.update({"code": room.code, "teacher": secret})
    app.run()
    assert app.session_state["projector"] is True and app.toggle(key="projector").value
    # (AppTest's switch_page then loses that widget's value; in Chromium it stays on: checked by hand)
    at = room_page(room.code, teacher=secret)
    assert not at.exception, at.exception
    assert at.session_state["room_secrets"] == {room.code: secret}
    assert not at.button(key="room-reveal").disabled
    assert "teacher" not in at.query_params  # not on the projected address bar
    link = next(c.value for c in at.code if "teacher=" in c.value)  # kept in the teacher's collapsed expander
    assert link.endswith(f"teacher={secret}")


def test_a_room_whose_lesson_is_gone_says_so_and_the_teacher_moves_on():
    from lib.lessons import LESSONS

    store = open_store()
    room, secret = store.create_room("lesson:no-longer-here", 4)  # e.g. made by an older version of the app
    member = join(room.code)
    assert not member.exception and len(member.error) == 1 and "no longer exists" in member.error[0].value
    teacher = teacher_of(room.code, secret)
    assert not teacher.exception and teacher.button(key="room-reveal").disabled
    teacher.button(key="room-next").click().run()
    assert open_store().room(room.code).subject == lesson_subject(LESSONS[0].id)
    member.run()
    assert not member.error and "Waiting for the teacher…" in captions(member)
