"""A real browser drives the real app: open a lesson, run it, wait for the charts, count what is drawn.

Starts `streamlit run app.py` on a free localhost port and drives Debian's Chromium with Playwright.
Screenshots land in test-results/ (look at them: they are what a workshop sees).
"""

from __future__ import annotations

import sys
import time

import pytest
from browser_kit import CLIPPED, ROOT, app_server, chromium, projector_on, start_app, stop_app

SHOTS = ROOT / "test-results"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_server(tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _traces(plot, selector: str) -> int:
    return plot.locator(selector).count()


def test_run_a_lesson_in_the_browser(server, browser):
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/lessons?lesson=softmax-one-unit")
    page.get_by_role("button", name="Run it").click(timeout=60_000)
    page.get_by_text("What we measured:").wait_for(timeout=180_000)
    plots = page.locator(".js-plotly-plot")
    plots.first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)

    loss = plots.nth(0)
    assert _traces(loss, "g.trace.scatter") == 4  # train + validation loss for each of the two heads
    assert "Every prediction is 1, the same for every image" in page.inner_text("body")
    loss.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lesson-curves.png"))

    page.get_by_text("Outputs before / after", exact=True).click()
    page.wait_for_timeout(2000)
    visible = page.locator(".js-plotly-plot:visible")
    hist = visible.nth(0)
    # before/after × true class (dark/bright... here: other clothing / footwear) for the first head
    assert _traces(hist, "g.trace.bars") >= 4
    assert visible.count() == 4  # outputs + per-sample sums, for each of the two heads
    hist.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lesson-outputs.png"))
    page.close()


def test_home_renders_and_projector_mode_grows_the_text(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(server)
    page.get_by_text("Backbones and their weights").wait_for(timeout=60_000)
    page.locator("[data-testid=stTable]").wait_for(timeout=60_000)  # the script has finished its run
    page.locator("[data-testid=stMainMenu]").wait_for(timeout=10_000)  # the toolbar is drawn...
    assert page.get_by_text("Deploy", exact=True).count() == 0  # ...without Streamlit's Deploy (toolbarMode)
    size = "getComputedStyle(document.querySelector('[data-testid=stMain] [data-testid=stMarkdownContainer] p')).fontSize"
    before = float(page.evaluate(size).rstrip("px"))
    assert projector_on(page)
    page.wait_for_function(f"parseFloat({size}) > {before}", timeout=15_000)
    page.screenshot(path=str(SHOTS / "home-projector.png"))
    page.close()


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _pets(classes: tuple[str, str], shade: int) -> bytes:
    """A zip named like every other participant's: pets/<class>/<n>.png, 5 images per class."""
    import io

    from PIL import Image

    def png(v: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (v % 256, shade, 90)).save(buf, format="PNG")
        return buf.getvalue()

    return _zip({f"pets/{c}/{i}.png": png(40 * k + i) for k, c in enumerate(classes) for i in range(5)})


def _upload(page, content: bytes) -> None:
    page.locator("[data-testid=stFileUploaderDropzoneInput]").set_input_files(
        files=[{"name": "pets.zip", "mimeType": "application/zip", "buffer": content}])


def test_two_sessions_upload_same_named_zips_and_a_hostile_one(server, browser, tmp_path):
    """Two real browser sessions upload 'pets.zip' with the same file layout but different classes; one
    first tries a zip whose entry climbs out of the folder. Each sees one clear message or its own data."""
    SHOTS.mkdir(exist_ok=True)
    a_ctx, b_ctx = browser.new_context(viewport={"width": 1280, "height": 900}), browser.new_context()
    a, b = a_ctx.new_page(), b_ctx.new_page()
    for page in (a, b):
        page.goto(f"{server}/data")
        page.get_by_role("tab", name="Upload your own").click(timeout=60_000)
        page.locator("[data-testid=stFileUploaderDropzoneInput]").wait_for(state="attached", timeout=60_000)

    hostile = _zip({"pets/cat/0.png": b"x", "../escape.png": b"gotcha"})
    _upload(a, hostile)
    alert = a.locator("[data-testid=stAlertContentError]").filter(has_text="outside")
    alert.wait_for(timeout=60_000)
    assert "escape.png" in alert.inner_text()
    alert.scroll_into_view_if_needed()
    a.screenshot(path=str(SHOTS / "upload-hostile-zip.png"))
    assert a.locator("[data-testid=stException]").count() == 0
    assert not (ROOT / "escape.png").exists() and not (ROOT.parent / "escape.png").exists()

    _upload(a, _pets(("cat", "dog"), shade=10))
    _upload(b, _pets(("ant", "bee"), shade=200))
    for page, mine in ((a, "cat, dog"), (b, "ant, bee")):
        page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Loaded pets").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        body = page.inner_text("[data-testid=stMain]").replace("\u2060", "")  # md_escape's invisible joiners
        classes = [line for line in body.splitlines() if line.startswith("Classes:")]
        assert classes == [f"Classes: 2 classes: {mine} (0 = {mine[:3]}, 1 = {mine[-3:]})"], classes
    a.get_by_text("Classes: 2 classes").scroll_into_view_if_needed()
    a.screenshot(path=str(SHOTS / "upload-session-a.png"))
    a_ctx.close()
    b_ctx.close()


def test_experiment_train_change_and_train_again(server, browser):
    """Train is a fragment on the Experiment page: its results must still follow every change above it."""
    import urllib.parse

    from lib.experiment import Experiment
    from lib.heads.config import default_head

    exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=3, seed=5,
                     heads=(default_head("binary"), default_head("binary", activation="softmax", units=1)))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server}/experiment?{urllib.parse.urlencode(exp.to_query(), doseq=True)}")
    train = page.get_by_role("button", name="Train")
    train.click(timeout=120_000)
    done = page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Trained 2 heads × 3 epochs")
    done.wait_for(timeout=180_000)
    loss = page.locator(".js-plotly-plot").first
    loss.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    assert _traces(loss, "g.trace.scatter") == 4
    main = page.inner_text("[data-testid=stMain]")
    assert "Every prediction is 1, the same for every image" in main
    # the backend column beside each verdict (editor and result card): what the same head does on JAX
    assert main.count("On JAX this head would differ: Softmax over one unit") == 2, main
    assert main.count("On JAX: the same") == 2
    loss.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "experiment-results.png"))

    # a change above the fragment (epochs 3 → 4) is a full rerun: the results say they are stale
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("4")
    epochs.press("Enter")
    stale = page.get_by_text("These results are from the settings before your last change")
    stale.wait_for(timeout=60_000)
    train.click()
    page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Trained 2 heads × 4 epochs").wait_for(
        timeout=180_000)
    stale.wait_for(state="detached", timeout=30_000)

    # Add head sits in the fragment too, but a new column is the whole page's business
    page.get_by_role("button", name="Add head").click()
    page.get_by_text("Head 3", exact=True).wait_for(timeout=60_000)
    train.click()
    page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Trained 3 heads × 4 epochs").wait_for(
        timeout=180_000)
    assert page.locator("[data-testid=stException]").count() == 0
    page.close()


def test_a_session_that_closes_mid_training_leaves_the_queue_working(server):
    """Streamlit's own websocket protocol (the load benchmark's client): one session presses Train and
    disconnects at once; the next session still gets a training slot and its results."""
    import asyncio
    import urllib.parse

    sys.path.insert(0, str(ROOT / "bench"))
    from st_client import StreamlitSession
    from streamlit.proto.Alert_pb2 import Alert

    from lib.experiment import Experiment
    from lib.heads.config import default_head

    def link(seed: int) -> str:
        exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=40, seed=seed,
                         heads=tuple(default_head("binary", learning_rate=lr) for lr in (1e-3, 1e-2, 1e-1)))
        return urllib.parse.urlencode(exp.to_query(), doseq=True)

    async def scenario() -> list[str]:
        deadline = time.monotonic() + 240
        leaver = StreamlitSession(server, "experiment", link(11))
        await leaver.open(timeout=60)
        assert await leaver.wait_until(lambda st: st.finished and st.button("Train"), deadline)
        await leaver.click("Train")
        assert await leaver.wait_until(lambda st: st.progress_texts(), deadline)  # its run has started
        await leaver.close()

        stayer = StreamlitSession(server, "experiment", link(12))
        await stayer.open(timeout=60)
        assert await stayer.wait_until(lambda st: st.finished and st.button("Train"), deadline)
        runs = len(stayer.state.finished)
        await stayer.click("Train")
        ok = await stayer.wait_until(
            lambda st: len(st.finished) > runs and any("Trained 3 heads" in a for a in st.alerts(Alert.SUCCESS)),
            deadline)
        errors = stayer.state.errors()
        await stayer.close()
        assert ok, f"no results: {stayer.closed or stayer.state.progress_texts()}"
        return errors

    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, scenario()).result() == []


def test_a_hostile_link_shows_text_and_fetches_nothing(server, browser):
    """A link whose values and head name are Markdown images, links and icons: every participant who
    opens it sees the text itself, and their browser asks no other address for anything."""
    import urllib.parse

    from lib.heads.config import default_head

    probe = "http://hl-probe.invalid"  # never resolves; any request to it, or a link to it, is the leak
    image, login = f"![t]({probe}/t.png)", f"[Session expired - log in]({probe}/login)"
    head = default_head("binary", name=f"[go]({probe}) :material/warning: ![t]({probe})")
    query = {"task": image, "bb": login, "ds": image, "epochs": image, "size": "64", "h": [head.to_url()]}
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 2600})
    page.on("request", lambda r: requests.append(r.url) if r.url.startswith(probe) else None)
    page.goto(f"{server}/experiment?{urllib.parse.urlencode(query, doseq=True)}")
    page.get_by_role("button", name="Train").click(timeout=120_000)
    page.locator("[data-testid=stAlertContentSuccess]").filter(has_text="Trained 1 head ×").wait_for(timeout=180_000)
    main = page.locator("[data-testid=stMain]")
    page.wait_for_timeout(1000)
    assert requests == []
    assert main.locator("img[src*='hl-probe']").count() == 0 and main.locator("a[href*='hl-probe']").count() == 0
    assert main.locator("[data-testid=stIconMaterial]").filter(has_text="warning").count() == 0
    text = main.inner_text().replace("\u2060", "")  # the invisible joiner that keeps :name: from being an icon
    assert "Unknown backbone '[Session expired - log in]" in text  # the notice quotes the link as text
    assert f"1. [go]({probe}) :material/warning: ![t]" in text  # the head's name on its card, as text
    main.locator("[data-testid=stAlertContainer]").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "hostile-link.png"), full_page=True)
    page.close()


def _experiment_link(exp) -> str:
    import urllib.parse

    return urllib.parse.urlencode(exp.to_query(), doseq=True)


def test_live_training_chart_has_epochs_on_x_and_a_line_per_head(server, browser):
    """Mid-training, the live chart draws one loss line per head over the epochs so far, its legend
    naming the heads (it once put head names on the x axis and a legend of epochs sorted as text)."""
    from lib.experiment import Experiment
    from lib.heads.config import default_head

    SHOTS.mkdir(exist_ok=True)
    # long enough to watch (the chart appears after 1.5 s of training): a hidden layer, 80 epochs
    heads = tuple(default_head("binary", learning_rate=lr, hidden=((256, "relu"),), name=f"lr {lr:g}")
                  for lr in (1e-3, 1e-2, 1e-4))
    exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=80, seed=21, heads=heads)
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(f"{server}/experiment?{_experiment_link(exp)}")
    page.get_by_role("button", name="Train").click(timeout=120_000)
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    chart.wait_for(timeout=120_000)
    page.wait_for_timeout(800)  # a redraw or two
    shown = page.get_by_text("Training 3 heads: epoch").inner_text()
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(SHOTS / "live-training-chart.png"))
    epoch = int(shown.split("epoch ")[1].split("/")[0])
    assert epoch < 80, "the screenshot must be taken mid-training"
    x_axis = chart.locator("[aria-roledescription=axis]").first.get_attribute("aria-label")
    assert x_axis.startswith("X-axis titled 'epoch' for a linear scale"), x_axis
    assert chart.locator("[aria-roledescription='line mark']").count() == 3  # one line per head
    legend = chart.locator("[aria-roledescription=legend] text").all_text_contents()  # SVG: no inner_text
    assert legend == ["1. lr 0.001", "2. lr 0.01", "3. lr 0.0001", "head"], legend
    page.get_by_text("Trained 3 heads × 80 epochs").wait_for(timeout=180_000)
    assert chart.count() == 0  # the live chart makes room for the results
    page.close()


def test_six_heads_stay_usable_at_1280(server, browser):
    """Six heads at 1280×800: rows of three, every label on one line, dropdowns and the learning-rate
    box wide enough for their values (one row of six once broke labels mid-word: "Op tim ize r")."""
    from lib.experiment import Experiment
    from lib.heads.config import default_head

    SHOTS.mkdir(exist_ok=True)
    heads = tuple(default_head("binary", learning_rate=lr) for lr in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1e-4))
    exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=3, seed=4, heads=heads)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/experiment?{_experiment_link(exp)}")
    page.get_by_text("Head 6", exact=True).wait_for(timeout=120_000)
    page.get_by_role("button", name="Train").wait_for(timeout=60_000)
    for summary in page.locator("[data-testid=stExpander] summary").all():
        summary.click()
    page.get_by_label("Learning rate").nth(5).wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    page.get_by_text("Head 1", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "six-heads-1280.png"))
    page.get_by_text("Head 4", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "six-heads-1280-row2.png"))

    tops = sorted({round(page.get_by_text(f"Head {i}", exact=True).bounding_box()["y"]) for i in range(1, 7)})
    assert len(tops) == 2, tops  # two rows (of three)
    widths = [page.get_by_label(label).nth(i).bounding_box()["width"]
              for label in ("Output activation", "Loss", "Optimizer", "Learning rate") for i in range(6)]
    assert min(widths) > 90, widths  # 130 px columns left "sigmoi" and learning-rate slivers
    labels = page.locator("[data-testid=stMain] [data-testid=stWidgetLabel]")
    for i in range(labels.count()):  # one line each: a label broken over lines is taller than 30 px
        box = labels.nth(i).bounding_box()
        assert box is None or box["height"] < 30, labels.nth(i).inner_text()
    truncated = page.evaluate("""[...document.querySelectorAll('[data-testid=stMain] [data-testid=stWidgetLabel] p')]
        .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText)""")
    assert truncated == []  # no label cut to "Natural …"
    page.close()


_FONT = "sel => parseFloat(getComputedStyle(document.querySelector(sel)).fontSize)"



def test_projector_mode_grows_titles_and_draws_charts_unclipped(server, browser):
    """Projector mode on a lesson: the title and the lesson question grow with the text, charts are drawn
    larger at full width with nothing outside their box, and a regression lesson shows no output-sum
    panels (they mean nothing there)."""
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/lessons?lesson=regression-activations")
    run = page.get_by_role("button", name="Run it")
    run.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    normal = {sel: page.evaluate(_FONT, sel) for sel in ("h1", "h3", "[data-testid=stMain] p")}
    assert projector_on(page)
    page.wait_for_function(f"parseFloat(getComputedStyle(document.querySelector('h3')).fontSize) > {normal['h3']}",
                           timeout=15_000)
    big = {sel: page.evaluate(_FONT, sel) for sel in normal}
    for sel in normal:  # everything larger, headings (the lesson question is the h3) included
        assert big[sel] > normal[sel] * 1.2, (sel, normal, big)
    assert big["h3"] > big["[data-testid=stMain] p"] * 1.3  # a title stays a title
    page.screenshot(path=str(SHOTS / "projector-lesson-top.png"))

    run.click()
    page.get_by_text("What we measured:").wait_for(timeout=180_000)
    plots = page.locator(".js-plotly-plot")
    plots.nth(2).wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    # each head's number stays the largest text on its card (it once shrank to body size)
    assert page.evaluate(_FONT, "[data-testid=stMetricValue] p") > 1.8 * big["[data-testid=stMain] p"]
    main_width = page.locator("[data-testid=stMain] [data-testid=stSelectbox]").first.bounding_box()["width"]
    for i in range(plots.count()):
        plot = plots.nth(i)
        assert plot.bounding_box()["width"] > 0.9 * main_width  # full width: no half-page charts
        assert plot.evaluate(CLIPPED) == [], i
    ticks = plots.nth(0).locator(".xtick text").all_text_contents()
    assert ticks[-1] == "20", ticks  # the x axis reaches the last epoch
    legend = plots.nth(0).locator(".legendtext").all_text_contents()
    # full names, not "linear + M…"; linear's and ReLU's curves coincide here, so the chart marks the pair
    assert legend == ["linear + MSE (= 2.)", "relu + MSE (= 1.)", "sigmoid + MSE"], legend
    plots.nth(0).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "projector-lesson-curves.png"))

    page.get_by_text("Outputs before / after", exact=True).click()
    page.get_by_text("Predicted vs true — sigmoid + MSE").wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    visible_plots = page.locator(".js-plotly-plot:visible")
    assert visible_plots.count() == 3  # one predicted-vs-true chart per head, no "output sums" panels
    assert "Output sums only mean something" not in page.inner_text("[data-testid=stMain]")
    for i in range(3):
        assert visible_plots.nth(i).evaluate(CLIPPED) == [], i
    visible_plots.nth(0).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "projector-lesson-outputs.png"))

    # the Experiment page in the same session (projector still on): no setting cut to "bi" or "9"
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Experiment").click()
    page.get_by_text("Head 1", exact=True).wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    shown = page.evaluate("""[...document.querySelectorAll('[data-testid=stMain] input[role=combobox]')]
        .map(e => [e.value, e.scrollWidth > e.clientWidth + 1])""")  # Chromium: overflowing text widens scrollWidth
    assert [text for text, cut in shown if cut] == [], shown  # a value wider than its box is cut off
    assert ["binary", False] in shown and ["96", False] in shown, shown
    page.screenshot(path=str(SHOTS / "projector-experiment.png"))
    page.close()


def test_two_participants_queued_together_train_in_one_batch(browser, tmp_path):
    """Cross-session batching in real pages: while one participant's long sweep holds the only slot, two
    others press Train; they train as one batch, and each page shows its own heads' results and says so."""
    import os
    import urllib.parse

    from lib.experiment import Experiment
    from lib.heads.config import default_head

    def link(epochs: int, seed: int, **head) -> str:
        exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=epochs, seed=seed,
                         heads=(default_head("binary", **head), default_head("binary", activation="softmax", units=1)))
        return urllib.parse.urlencode(exp.to_query(), doseq=True)

    with open(tmp_path / "streamlit.log", "w") as log:
        proc, url = start_app(log, {**os.environ, "HEADLAB_TRAINING_SLOTS": "1"})  # one slot on any machine
        try:
            long_one = link(60, 1, hidden=((1024, "relu"),))  # seconds of training: the others queue behind it
            pages = [browser.new_page(viewport={"width": 1280, "height": 1400}) for _ in range(3)]
            for page, query in zip(pages, (long_one, link(8, 2), link(8, 3)), strict=True):
                page.goto(f"{url}/experiment?{query}")
                page.get_by_role("button", name="Train").wait_for(timeout=120_000)
            pages[0].get_by_role("button", name="Train").click()
            pages[0].get_by_text("Training 2 heads").wait_for(timeout=120_000)  # it holds the slot
            for page in pages[1:]:
                page.get_by_role("button", name="Train").click()
            for page in pages[1:]:  # both in line behind the long sweep (not yet training)
                page.get_by_text("Queued: place").wait_for(timeout=60_000)
            together = "together with 1 other participant's sweep"
            for page in pages[1:]:
                page.locator("[data-testid=stAlertContentSuccess]").filter(has_text=together).wait_for(
                    timeout=240_000)
            pages[0].locator("[data-testid=stAlertContentSuccess]").filter(has_text="Trained 2 heads × 60").wait_for(
                timeout=240_000)
            assert together not in pages[0].inner_text("[data-testid=stMain]")
            for page in pages[1:]:
                page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1000)
                assert _traces(page.locator(".js-plotly-plot").first, "g.trace.scatter") == 4  # its own 2 heads
                assert page.locator("[data-testid=stException]").count() == 0
            pages[1].set_viewport_size({"width": 1280, "height": 3600})  # Streamlit scrolls in its own container
            pages[1].wait_for_timeout(1500)
            pages[1].screenshot(path=str(SHOTS / "batched-participant.png"))
            for page in pages:
                page.close()
        finally:
            stop_app(proc)


# A slider step's redraw, from the mouse press on the slider to the frame painted after Plotly's animation
# (plotly_animated, then one requestAnimationFrame): what a class sees when the teacher drags the epoch.
_WATCH_SCRUB = """plot => {
    window.__scrub = [];
    document.addEventListener('mousedown', e => { window.__down = performance.now(); }, true);
    plot.on('plotly_animated', () => requestAnimationFrame(() => window.__scrub.push(performance.now() - window.__down)));
}"""


def test_see_inside_the_heads_scrub_epochs_and_compare_images(server, browser):
    """Train 3 heads, scrub the epoch slider of the what-the-loss-saw view, open a head's top-losses gallery
    and the same image in every head; screenshots at 1280×800 and in projector mode."""
    import statistics

    from lib.experiment import Experiment
    from lib.heads.config import default_head

    SHOTS.mkdir(exist_ok=True)
    heads = (default_head("binary"), default_head("binary", activation="softmax", units=1),
             default_head("binary", activation="linear"))
    exp = Experiment(task="binary", dataset="fashion", input_size=64, epochs=6, seed=3, heads=heads)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{server}/experiment?{_experiment_link(exp)}")
    page.get_by_role("button", name="Train").click(timeout=120_000)
    page.get_by_text("Trained 3 heads × 6 epochs").wait_for(timeout=180_000)
    main = page.locator("[data-testid=stMain]")
    main.get_by_text("confidently wrong").first.wait_for(timeout=60_000)
    assert main.get_by_text("confidently wrong", exact=True).count() == 3  # on every head's card

    page.get_by_text("What the loss saw", exact=True).click()
    scrub = page.locator(".js-plotly-plot").filter(has=page.locator(".slider-container")).first
    scrub.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    assert "The loss used the pre-softmax values" in main.inner_text()
    # three heads, two panels each, one frame per epoch (0-6)
    assert scrub.locator(".cartesianlayer > .subplot").count() == 6
    scrub.evaluate(_WATCH_SCRUB)
    scrub.locator(".slider-container").scroll_into_view_if_needed()  # the mouse acts inside the viewport
    page.wait_for_timeout(300)
    rail = scrub.locator(".slider-rail-touch-rect").bounding_box()
    current = scrub.locator(".slider-container text").first  # "epoch N"
    assert current.text_content() == "epoch 6"  # opens at the last epoch
    for k in (0, 3, 1, 5, 2, 4, 0, 6):  # click the rail at step k of 0..6
        page.mouse.click(rail["x"] + 8 + (rail["width"] - 16) * k / 6, rail["y"] + rail["height"] / 2)
        page.wait_for_timeout(400)
        assert current.text_content() == f"epoch {k}", k
    times = page.evaluate("window.__scrub")
    assert len(times) >= 8, times
    median = statistics.median(times)
    print(f"\nepoch scrubber redraw, 3 heads: median {median:.0f} ms, max {max(times):.0f} ms ({[round(t) for t in times]})")
    page.mouse.click(rail["x"] + 8, rail["y"] + rail["height"] / 2)  # epoch 0 for the screenshot
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "inside-scrubber-epoch0-1280.png"))
    # play: the frames run on by themselves (250 ms each) to the last epoch, every head together
    scrub.locator(".updatemenu-button").filter(has_text="play").click(force=True)
    page.wait_for_function("() => [...document.querySelectorAll('.slider-container text')].some(t => t.textContent == 'epoch 6')",
                           timeout=15_000)
    scrub.screenshot(path=str(SHOTS / "inside-scrubber-last-epoch.png"))

    page.get_by_text("Images", exact=True).click()
    page.get_by_text("The images each head gets most wrong").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    gallery = main.locator("[data-testid=stImage]")
    assert gallery.count() == 3 * 6 + 1  # six per head, and the chosen image
    gallery.nth(3).scroll_into_view_if_needed()  # the first head's row, the second's under it
    page.screenshot(path=str(SHOTS / "inside-top-losses-1280.png"))
    assert "1.0 (to float precision) for" in main.inner_text()
    every = main.get_by_role("button", name="every head")
    every.nth(6).click()  # the softmax head's worst image
    page.wait_for_timeout(2500)
    chosen = page.get_by_role("spinbutton", name="Validation image").input_value()
    assert f"#1 · image {chosen}\n" in main.inner_text()  # a worst image was chosen
    same = page.locator(".js-plotly-plot").filter(has_text=f"Validation image {chosen}:")
    same.wait_for(timeout=60_000)
    same.scroll_into_view_if_needed()
    assert same.locator("g.trace.bars").count() == 3  # one bar per head
    page.screenshot(path=str(SHOTS / "inside-same-image-1280.png"))

    # or click a point: the picker's points are the validation images (Streamlit's Plotly selection event)
    picker = page.locator(".js-plotly-plot").filter(has_text="Pick an image: click a point")
    picker.scroll_into_view_if_needed()
    point = picker.locator(".scatterlayer .point").nth(3)
    point.click(force=True)  # at its place on the chart: Plotly's drag layer above it takes the click, as for a user
    page.wait_for_function(f"() => document.querySelector('input[aria-label=\"Validation image\"]').value != '{chosen}'",
                           timeout=60_000)
    clicked = page.get_by_role("spinbutton", name="Validation image").input_value()
    page.locator(".js-plotly-plot").filter(has_text=f"Validation image {clicked}:").wait_for(timeout=60_000)
    picker.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "inside-image-picker-1280.png"))

    assert projector_on(page)
    page.wait_for_timeout(2000)
    page.get_by_text("The images each head gets most wrong").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "inside-top-losses-projector.png"))
    page.get_by_text("What the loss saw", exact=True).click()
    scrub.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    scrub.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "inside-scrubber-projector.png"))
    assert page.locator("[data-testid=stException]").count() == 0
    page.close()
