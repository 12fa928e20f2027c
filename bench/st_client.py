"""A minimal Streamlit client that speaks the browser's websocket protocol, for load runs.

A workshop's 30 browsers run on 30 laptops; on the one machine of a load run, 30 real Chromium
renderers would take the server's own cores. This client does what the browser does on the wire —
opens `/_stcore/stream`, asks for a page run with the page's query string, keeps the page's elements
by their delta path, and "clicks" a button by sending a rerun with that button's trigger — and
nothing else (no layout, no drawing). It uses Streamlit's own protobuf classes.

What else the browser does on the wire, and this client too:
- a text input's value is sent with a rerun when it is typed (`set_text`), and with every rerun after;
- `st.fragment(run_every=…)` is a timer in the BROWSER: the server sends `auto_rerun` (interval, fragment
  id) when the fragment runs, and the page then sends a rerun of that fragment (`is_auto_rerun`) every
  interval, until a full run starts (timers cleared, then re-armed by the run's own `auto_rerun`) or
  the server sends `stop_auto_rerun`. Without this a client would never see a live count change;
- a block redrawn with the same type keeps its contents until the run redraws them (no gap while a
  fragment reruns); when a run ends, what it did not redraw is dropped (a fragment's run: only inside
  that fragment).

Widgets the client never touched are not sent: the server keeps their last values, as it does for a
browser that sends them unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


@dataclass
class PageState:
    """What the page shows now: elements by delta path, and what each run ended with."""

    elements: dict[tuple, object] = field(default_factory=dict)
    fragment_of: dict[tuple, str] = field(default_factory=dict)  # delta path -> id of the fragment that drew it
    run_of: dict[tuple, str] = field(default_factory=dict)  # delta path -> script run that drew it (for pruning)
    finished: list[int] = field(default_factory=list)  # ScriptFinishedStatus of each ended run
    page_script_hash: str = ""
    query_string: str = ""

    def of_type(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.elements.values() if e.WhichOneof("type") == kind]

    def button(self, label: str | None = None, key: str | None = None):
        return self.widget_and_fragment("button", label, key)[0]

    def button_and_fragment(self, label: str | None = None, key: str | None = None) -> tuple[object | None, str]:
        """The button with this label (or this widget key) and the fragment it belongs to ("" when none)."""
        return self.widget_and_fragment("button", label, key)

    def widget_and_fragment(self, kind: str, label: str | None = None,
                            key: str | None = None) -> tuple[object | None, str]:
        """The widget of this kind with this label or key (its id ends in "-<key>"), and its fragment."""
        for path, e in self.elements.items():
            if e.WhichOneof("type") != kind:
                continue
            w = getattr(e, kind)
            if (key is not None and w.id.endswith(f"-{key}")) or (key is None and w.label == label):
                return w, self.fragment_of.get(path, "")
        return None, ""

    def markdown(self) -> list[str]:
        """Every Markdown body on the page (st.markdown, st.caption, st.write of text), in delta-path order."""
        return [self.elements[p].markdown.body for p in sorted(self.elements)
                if self.elements[p].WhichOneof("type") == "markdown"]

    def texts(self) -> list[str]:
        """What the page says in words: Markdown bodies, st.text, headings, alerts, in delta-path order."""
        out = []
        for p in sorted(self.elements):
            e = self.elements[p]
            kind = e.WhichOneof("type")
            if kind in ("markdown", "text", "heading", "alert"):
                out.append(getattr(e, kind).body)
        return out

    def find_text(self, pattern: str) -> re.Match | None:
        """The first match of the regular expression in what the page says (see texts)."""
        for t in self.texts():
            m = re.search(pattern, t)
            if m:
                return m
        return None

    def alerts(self, fmt: int) -> list[str]:
        return [a.body for a in self.of_type("alert") if a.format == fmt]

    def errors(self) -> list[str]:
        """Exception boxes and error alerts, except a head's diagnosis ("... Knob: ..."), which is a finding."""
        found = [f"exception: {e.message}"[:300] for e in self.of_type("exception")]
        found += [f"error: {body}"[:300] for body in self.alerts(Alert.ERROR) if "Knob:" not in body]
        return found

    def progress_texts(self) -> list[str]:
        return [p.text for p in self.of_type("progress")]

    def plotly_trace_counts(self) -> list[int]:
        return [len(json.loads(p.spec).get("data", [])) for p in self.of_type("plotly_chart")]


class StreamlitSession:
    """One browser-like session on a Streamlit server."""

    def __init__(self, url: str, page: str, query: str) -> None:
        self.ws_url = url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.page, self.query = page, query
        self.state = PageState(query_string=query)
        self.closed: str | None = None
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._values: dict[str, object] = {}  # widget id -> the WidgetState last set by this client
        self._timers: dict[str, tuple[float, asyncio.Task]] = {}  # fragment id -> (interval, its rerun loop)
        self.auto_reruns = 0  # fragment reruns this client's timers have sent
        self._run_id = ""  # the script run whose deltas are arriving
        self._blocks: dict[tuple, str] = {}  # delta path -> the type of the block drawn there

    async def open(self, timeout: float) -> None:
        import websockets

        self._ws = await asyncio.wait_for(
            websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout),
            timeout)
        self._reader = asyncio.create_task(self._read())
        await self._rerun(widgets=[])

    async def close(self) -> None:
        self._stop_timers()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # closing anyway
                await self._reader

    async def _rerun(self, widgets: list, fragment_id: str = "", auto: bool = False) -> None:
        """Ask for a run, carrying every value this client has set (as the browser sends all its widgets)
        plus `widgets` (a click's trigger, a value just typed)."""
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.state.query_string
        cs.page_script_hash = self.state.page_script_hash
        cs.page_name = "" if self.state.page_script_hash else self.page
        cs.fragment_id = fragment_id  # a button inside st.fragment reruns only that fragment, as in the browser
        cs.is_auto_rerun = auto
        given = {w.id for w in widgets}
        cs.widget_states.widgets.extend([w for i, w in self._values.items() if i not in given] + widgets)
        await self._ws.send(msg.SerializeToString())

    async def click(self, label: str | None = None, key: str | None = None) -> None:
        """Press the button with this label or widget key (as the browser does: a rerun carrying its trigger)."""
        button, fragment_id = self.state.button_and_fragment(label, key)
        if button is None:
            raise LookupError(f"no button {key or label!r} on the page")
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        await self._rerun(widgets=[WidgetState(id=button.id, trigger_value=True)], fragment_id=fragment_id)

    async def set_text(self, value: str, label: str | None = None, key: str | None = None) -> None:
        """Type `value` into the text input with this label or key and leave it (the browser sends the
        value with a rerun on Enter or blur; it is sent with every rerun after, as the browser does)."""
        box, fragment_id = self.state.widget_and_fragment("text_input", label, key)
        if box is None:
            raise LookupError(f"no text input {key or label!r} on the page")
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        state = WidgetState(id=box.id, string_value=value)
        self._values[box.id] = state
        await self._rerun(widgets=[state], fragment_id=fragment_id)

    # ---- st.fragment(run_every=…): the browser's timers ----------------------------------------------
    def _arm(self, fragment_id: str, interval: float) -> None:
        """As the page's handleAutoRerun: one timer per fragment; the same interval again keeps it running."""
        old = self._timers.get(fragment_id)
        if old is not None and old[0] == interval:
            return
        if old is not None:
            old[1].cancel()
        self._timers[fragment_id] = (interval, asyncio.get_running_loop().create_task(
            self._tick(fragment_id, interval)))

    async def _tick(self, fragment_id: str, interval: float) -> None:
        # setInterval: a fixed rate, whether or not the last rerun has ended (the server coalesces them)
        next_at = time.monotonic() + interval
        while self.closed is None:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            try:
                await self._rerun(widgets=[], fragment_id=fragment_id, auto=True)
            except Exception:  # noqa: BLE001 — the connection is gone; the reader records why
                return
            self.auto_reruns += 1

    def _stop_timers(self, fragment_ids: list[str] | None = None) -> None:
        for fid in list(self._timers) if fragment_ids is None else fragment_ids:
            entry = self._timers.pop(fid, None)
            if entry is not None:
                entry[1].cancel()

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = ForwardMsg()
                msg.ParseFromString(raw)
                self._apply(msg)
                self._changed.set()
        except Exception as e:  # noqa: BLE001 — a dropped connection is this session's error
            self.closed = f"{type(e).__name__}: {e}"[:200]
        else:
            self.closed = "connection closed by the server"
        self._changed.set()

    def _apply(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.state.page_script_hash = msg.new_session.page_script_hash or self.state.page_script_hash
            self._run_id = msg.metadata.run.script_run_id  # deltas carry no run: they belong to the latest
            if not msg.metadata.run.fragment_ids:  # a full run: the page drops its timers; the run re-arms them
                self._stop_timers()
        elif kind == "auto_rerun":
            if msg.auto_rerun.fragment_id:
                self._arm(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            self._stop_timers(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "navigation":
            self.state.page_script_hash = msg.navigation.page_script_hash or self.state.page_script_hash
        elif kind == "page_info_changed":
            self.state.query_string = msg.page_info_changed.query_string
        elif kind == "delta":
            path = tuple(msg.metadata.delta_path)
            which = msg.delta.WhichOneof("type")
            if which == "new_element":
                self.state.elements[path] = msg.delta.new_element
                self.state.fragment_of[path] = msg.delta.fragment_id
                self.state.run_of[path] = self._run_id
            elif which == "add_block":
                # As the page's addBlock: a block of the same type at this path keeps its children until
                # this run redraws or prunes them (no gap while a fragment redraws); another type replaces them.
                kind = msg.delta.add_block.WhichOneof("type") or ""
                if self._blocks.get(path) != kind:
                    for p in [p for p in self.state.elements if p[:len(path)] == path]:
                        self._drop(p)
                    for p in [p for p in self._blocks if p[:len(path)] == path]:
                        del self._blocks[p]
                self._blocks[path] = kind
        elif kind == "script_finished":
            status = msg.script_finished
            run = msg.metadata.run
            if run.script_run_id and status in (ForwardMsg.FINISHED_SUCCESSFULLY,
                                                ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
                self._prune(run.script_run_id, set(run.fragment_ids))
            self.state.finished.append(status)

    def _drop(self, path: tuple) -> None:
        for d in (self.state.elements, self.state.fragment_of, self.state.run_of):
            d.pop(path, None)

    def _prune(self, run_id: str, fragment_ids: set[str]) -> None:
        """As the page's clearStaleNodes: what this run did not draw goes (a fragment's run: in that fragment)."""
        for p in [p for p, r in self.state.run_of.items() if r != run_id
                  and (not fragment_ids or self.state.fragment_of.get(p, "") in fragment_ids)]:
            self._drop(p)

    async def wait_until(self, done: Callable[[PageState], bool], deadline: float) -> bool:
        """Wait until done(state) holds, the connection drops, or time.monotonic() passes deadline."""
        while True:
            if done(self.state):
                return True
            if self.closed or time.monotonic() >= deadline:
                return False
            self._changed.clear()
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as
            # the event is set, and a cancelled waiter would then run on to its deadline
            waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({waiter}, timeout=max(0.05, deadline - time.monotonic()))
            finally:
                waiter.cancel()
