"""A teacher's room around a lesson or an experiment: the question, the votes, the measured reveal.

A room's *subject* is a string the room database keeps: "lesson:<lesson id>" or "experiment:<the
experiment's URL query>". Everything else is derived from it, the same in every session and process:
the question (`question_for`: a lesson's quiz, or for an experiment "Which head will end with the best
…?" whose choices are its heads), what to train (`experiment_for`), and at reveal the choice the run
measured (`reveal`: `Question.measured` on the trained result, with a one-line note of what was
measured). The pages only draw what these return.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

from lib.common.errors import HeadLabError
from lib.common.text import clean_name
from lib.experiment import Experiment, from_query
from lib.heads.naming import distinct_labels
from lib.lessons import LESSONS, Choice, Lesson, Question, get_lesson
from lib.train.metrics import primary_metric
from lib.train.seeds import SeedSweeps
from lib.train.trainer import SweepResult

LESSON = "lesson:"
EXPERIMENT = "experiment:"
LETTERS = "ABCDEFGH"  # a choice's letter on the projector and in the chart (questions have at most 6)
MIN_HEADS = 2  # an experiment's question compares heads: one head has nothing to compare
SUMMARY_CHARS = 200  # a shared experiment's one-line summary
# How the headline metric reads in a question, and whether lower is better.
METRIC_WORDS = {"val_accuracy": ("validation accuracy", False), "val_exact_match": ("validation exact match", False),
                "val_mae": ("validation MAE", True)}


class WorkshopError(HeadLabError):
    """A room subject that cannot be taught (unknown lesson, an experiment with one head)."""


# ---- subjects -------------------------------------------------------------------------------------
def lesson_subject(lesson_id: str) -> str:
    get_lesson(lesson_id)  # KeyError for an unknown id: a programming error, not a user's
    return LESSON + lesson_id


def experiment_query(exp: Experiment) -> str:
    """The experiment as the Experiment page's URL query (what its address bar holds)."""
    return urlencode(exp.to_query(), doseq=True)


def experiment_subject(exp: Experiment) -> str:
    """The subject of a room about `exp`; WorkshopError when it has fewer than two heads to compare."""
    if len(exp.heads) < MIN_HEADS:
        raise WorkshopError("A room's question compares heads: add a second head to the experiment, then teach it.")
    return EXPERIMENT + experiment_query(exp)


def lesson_for(subject: str) -> Lesson | None:
    """The lesson a subject is about, or None for an experiment."""
    if subject.startswith(LESSON):
        try:
            return get_lesson(subject.removeprefix(LESSON))
        except KeyError:
            raise WorkshopError(f"This room's lesson '{clean_name(subject, 60)}' no longer exists; "
                                "the teacher can press Next lesson.") from None
    if subject.startswith(EXPERIMENT):
        return None
    raise WorkshopError("This room's subject cannot be read; the teacher can press Next lesson.")


def experiment_for(subject: str) -> Experiment:
    """What a room's reveal trains: the lesson's experiment, or the experiment its query describes."""
    lesson = lesson_for(subject)
    if lesson is not None:
        return lesson.experiment
    params = parse_qs(subject.removeprefix(EXPERIMENT), keep_blank_values=True)
    exp, _notices = from_query({k: v if k == "h" else v[-1] for k, v in params.items()})
    return exp


def title_for(subject: str) -> str:
    """A subject's title: the lesson's, or what the experiment compares."""
    lesson = lesson_for(subject)
    return lesson.title if lesson is not None else f"An experiment: {experiment_summary(experiment_for(subject))}"


def next_subject(subject: str) -> str | None:
    """The lesson after this subject's (the first lesson after an experiment); None after the last lesson."""
    lesson = lesson_for(subject)
    ids = [item.id for item in LESSONS]
    if lesson is None:
        return LESSON + ids[0]
    i = ids.index(lesson.id)
    return LESSON + ids[i + 1] if i + 1 < len(ids) else None


def experiment_summary(exp: Experiment) -> str:
    """One line: the heads by what differs between them, and the data they train on."""
    names = distinct_labels(exp.heads)
    text = (f"{len(names)} head{'s' if len(names) != 1 else ''} on {exp.dataset} ({exp.task}, {exp.backbone} "
            f"{exp.input_size} px, {exp.epochs} epochs): " + " | ".join(names))
    return clean_name(text, SUMMARY_CHARS)


# ---- questions ------------------------------------------------------------------------------------
def metric_words(task: str) -> tuple[str, str, bool]:
    """(metric key, how it reads, lower is better) of a task's headline metric."""
    key = primary_metric(task)
    words, lower = METRIC_WORDS.get(key, (key.removeprefix("val_").replace("_", " "), False))
    return key, words, lower


def _finals(rep: SeedSweeps, key: str) -> list[float]:
    """Each head's final `key`, averaged over the seeds (NaN for a head without one)."""
    values = []
    for i in range(rep.n_runs):
        v = rep.finals(i, key)
        v = v[[math.isfinite(x) for x in v]]
        values.append(float(v.mean()) if len(v) else math.nan)
    return values


def _tied(a: float, b: float) -> bool:
    """Two final metrics the run does not tell apart: equal to float precision (accuracies are counts
    of images, so two heads that classify as many images right are exactly equal)."""
    return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def best_heads(result: SweepResult | SeedSweeps) -> list[int]:
    """The heads with the best headline metric (several when they tie; none when no head has one)."""
    rep = SeedSweeps.of(result)
    key, _, lower = metric_words(rep.first.task)
    values = _finals(rep, key)
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return []
    top = min(finite) if lower else max(finite)
    return [i for i, v in enumerate(values) if math.isfinite(v) and _tied(v, top)]


def _wins(i: int):
    def holds(result: SweepResult | SeedSweeps) -> bool:
        return best_heads(result) == [i]
    return holds


def _tie(result: SweepResult | SeedSweeps) -> bool:
    return len(best_heads(result)) > 1


@dataclass(frozen=True)
class ExperimentQuestion:
    """A room's question about an experiment: the same face as a lesson's `Question` (prompt, choices,
    measured), but no choice is marked correct beforehand — for a teacher's own experiment only the run
    knows — and there is one choice per head (2–6) plus the tie."""

    prompt: str
    choices: tuple[Choice, ...]

    def measured(self, result: SweepResult | SeedSweeps) -> int | None:
        """The one choice the run bears out (None when no head has a result)."""
        held = holding(self, result)
        return held[0] if len(held) == 1 else None


TIE_CHOICE = "No single head: two or more end level"


def experiment_question(exp: Experiment) -> ExperimentQuestion:
    """'Which head will end with the best <metric>?', one choice per head and one for a tie: exactly one
    holds on any run where some head has a result (a head holds when it alone ends best)."""
    if len(exp.heads) < MIN_HEADS:
        raise WorkshopError("A room's question compares heads: this experiment has only one.")
    _, words, lower = metric_words(exp.task)
    prompt = f"Which head will end with the {'lowest' if lower else 'best'} {words}?"
    heads = tuple(Choice(name, _wins(i)) for i, name in enumerate(distinct_labels(exp.heads)))
    return ExperimentQuestion(prompt, heads + (Choice(TIE_CHOICE, _tie),))


def holding(question: Question | ExperimentQuestion, result: SweepResult | SeedSweeps) -> list[int]:
    """The choices whose statement holds on `result` (a statement the run cannot measure does not hold)."""
    rep = SeedSweeps.of(result)
    held = []
    for i, choice in enumerate(question.choices):
        try:
            ok = bool(choice.holds(rep))
        except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError):
            ok = False  # e.g. a head Keras refused has no history to measure
        if ok:
            held.append(i)
    return held


def question_for(subject: str) -> Question | ExperimentQuestion:
    """The room's question: the lesson's quiz, or the experiment's generated one."""
    lesson = lesson_for(subject)
    return lesson.quiz if lesson is not None else experiment_question(experiment_for(subject))


def letter(i: int) -> str:
    return LETTERS[i] if 0 <= i < len(LETTERS) else str(i + 1)


# ---- the reveal -----------------------------------------------------------------------------------
def _seeds_text(rep: SeedSweeps) -> str:
    s = rep.seeds
    return f"seed {s[0]}" if len(s) == 1 else f"the mean over seeds {s[0]}–{s[-1]}"


def measured_note(question: Question | ExperimentQuestion, result: SweepResult | SeedSweeps) -> str:
    """One line: what the run measured (each head's headline metric) and which choice it bears out —
    or that it does not decide (no choice holds, or several do)."""
    rep = SeedSweeps.of(result)
    key, words, lower = metric_words(rep.first.task)
    names = [r.label for r in rep.first.runs]
    unit = rep.first.unit

    def shown(v: float) -> str:
        if not math.isfinite(v):
            return "no result"
        return f"{v:.3g} {unit}".strip() if lower else f"{v:.1%}"

    metrics = ", ".join(f"{i + 1}. {n} {shown(v)}" for i, (n, v) in enumerate(zip(names, _finals(rep, key))))
    held = holding(question, rep)
    if len(held) == 1:
        verdict = f"the run bears out {letter(held[0])}."
    elif not held:
        verdict = "the run bears out none of the choices: it does not decide."
    else:
        verdict = f"the run bears out {' and '.join(letter(i) for i in held)} alike: it does not decide."
    return clean_name(f"Measured {words} ({_seeds_text(rep)}): {metrics} — {verdict}")


def reveal(store, code: str, secret: str, result: SweepResult | SeedSweeps):
    """Store the measured answer and its note in the room, which flips to revealed (RoomError unless
    `secret` is the room's teacher's). Returns the revealed Room."""
    room = store.room(code)
    question = question_for(room.subject)
    return store.reveal(code, secret, question.measured(result), measured_note(question, result))


def share_right(counts: Sequence[int], answer: int | None) -> float | None:
    """The share of a round's votes on the measured answer (None without votes or an answer)."""
    total = sum(counts)
    if answer is None or not total or not 0 <= answer < len(counts):
        return None
    return counts[answer] / total


def rounds_summary(rounds: dict[int, Sequence[int]], answer: int | None) -> str:
    """'Round 1: 4 of 10 votes (40%) on the measured answer · Round 2: 8 of 10 (80%)', or what is missing."""
    if answer is None:
        return "The run did not decide, so no vote was right or wrong."
    parts = []
    for r, counts in sorted(rounds.items()):
        share = share_right(counts, answer)
        parts.append(f"Round {r}: no votes" if share is None
                     else f"Round {r}: {counts[answer]} of {sum(counts)} votes ({share:.0%}) on the measured answer")
    return " · ".join(parts)


# ---- links ----------------------------------------------------------------------------------------
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


PAGE_PATHS = ("room", "lessons", "experiment", "data")  # app.py's url_paths


def app_address(page_url: str) -> str:
    """The app's own address from a page's (Streamlit's `st.context.url` still ends in the page's path,
    e.g. http://10.0.0.5:8501/room): scheme, host and any prefix a proxy adds, without the page."""
    parts = urlsplit(page_url)
    path = parts.path.rstrip("/")
    head, _, last = path.rpartition("/")
    if last in PAGE_PATHS:
        path = head
    return f"{parts.scheme}://{parts.netloc}{path}"


def join_link(base_url: str, code: str) -> str:
    """The link participants open: the app's address, the room page, the code."""
    return f"{base_url.rstrip('/')}/room?{urlencode({'code': code})}"


def teacher_link(base_url: str, code: str, secret: str) -> str:
    """The secret link that gives the room's controls to whoever opens it."""
    return f"{base_url.rstrip('/')}/room?{urlencode({'code': code, 'teacher': secret})}"


def link_is_local(url: str) -> bool:
    """Whether a link names this machine only (participants' phones cannot open it)."""
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


# ---- the vote chart -------------------------------------------------------------------------------
def vote_figure(n_choices: int, rounds: dict[int, Sequence[int]], answer: int | None = None, large: bool = True):
    """Votes per choice as horizontal bars (A at the top), one bar colour per round.

    Before the reveal `answer` must be None: every bar looks alike, so the chart gives nothing away.
    After it, the measured choice's label reads "B ✓ measured".
    """
    import plotly.graph_objects as go

    from lib.report.base import PALETTE

    font = 24 if large else 15
    labels = [letter(i) + (" ✓ measured" if i == answer else "") for i in range(n_choices)]
    fig = go.Figure()
    for k, (r, counts) in enumerate(sorted(rounds.items())):
        fig.add_bar(y=labels, x=list(counts), orientation="h", name=f"round {r}", text=list(counts),
                    textposition="outside", textfont_size=font, marker_color=PALETTE[k % len(PALETTE)],
                    cliponaxis=False)
    most = max([max(c, default=0) for c in rounds.values()] + [1])
    fig.update_layout(barmode="group", height=max(260, (90 if len(rounds) > 1 else 64) * n_choices + 80),
                      font=dict(size=font), margin=dict(l=20, r=40, t=20, b=40), bargap=0.25,
                      showlegend=len(rounds) > 1, legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0),
                      uirevision="votes")  # redraws every second without resetting zoom
    # every size set on the axes themselves: Streamlit's chart theme replaces the layout's font
    fig.update_yaxes(autorange="reversed", automargin=True, ticksuffix="  ", tickfont_size=font)
    fig.update_xaxes(range=[0, most * 1.15 + 0.5], dtick=max(1, math.ceil(most / 6)), title_text="votes",
                     automargin=True, tickfont_size=round(font * 0.8), title_font_size=round(font * 0.8))
    fig.update_layout(legend_font_size=round(font * 0.8))
    return fig
