"""A minimal Streamlit client that speaks the browser's websocket protocol, for load runs.

A workshop's 30 browsers run on 30 laptops; on the one machine of a load run, 30 real Chromium
renderers would take the server's own cores. This client does what the browser does on the wire —
opens `/_stcore/stream`, asks for a page run with the page's query string, keeps the page's elements
by their delta path, and "clicks" a button by sending a rerun with that button's trigger — and
nothing else (no layout, no drawing). It uses Streamlit's own protobuf classes.

Widgets the client never touched are not sent: the server keeps their last values, as it does for a
browser that sends them unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
    finished: list[int] = field(default_factory=list)  # ScriptFinishedStatus of each ended run
    page_script_hash: str = ""
    query_string: str = ""

    def of_type(self, kind: str) -> list:
        return [getattr(e, kind) for e in self.elements.values() if e.WhichOneof("type") == kind]

    def button(self, label: str):
        return self.button_and_fragment(label)[0]

    def button_and_fragment(self, label: str) -> tuple[object | None, str]:
        """The button with this label and the fragment it belongs to ("" when none)."""
        for path, e in self.elements.items():
            if e.WhichOneof("type") == "button" and e.button.label == label:
                return e.button, self.fragment_of.get(path, "")
        return None, ""

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

    async def open(self, timeout: float) -> None:
        import websockets

        self._ws = await asyncio.wait_for(
            websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout),
            timeout)
        self._reader = asyncio.create_task(self._read())
        await self._rerun(widgets=[])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # closing anyway
                await self._reader

    async def _rerun(self, widgets: list, fragment_id: str = "") -> None:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.state.query_string
        cs.page_script_hash = self.state.page_script_hash
        cs.page_name = "" if self.state.page_script_hash else self.page
        cs.fragment_id = fragment_id  # a button inside st.fragment reruns only that fragment, as in the browser
        cs.widget_states.widgets.extend(widgets)
        await self._ws.send(msg.SerializeToString())

    async def click(self, label: str) -> None:
        """Press the button with this label (as the browser does: a rerun carrying its trigger)."""
        button, fragment_id = self.state.button_and_fragment(label)
        if button is None:
            raise LookupError(f"no button {label!r} on the page")
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        await self._rerun(widgets=[WidgetState(id=button.id, trigger_value=True)], fragment_id=fragment_id)

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
            elif which == "add_block":  # a block replaces whatever was under its path
                for p in [p for p in self.state.elements if p[:len(path)] == path]:
                    del self.state.elements[p]
        elif kind == "script_finished":
            # Elements an earlier run drew and this one did not are not pruned (the browser would):
            # a load run reads only what a run adds after its click, so that never matters there.
            self.state.finished.append(msg.script_finished)

    async def wait_until(self, done: Callable[[PageState], bool], deadline: float) -> bool:
        """Wait until done(state) holds, the connection drops, or time.monotonic() passes deadline."""
        while True:
            if done(self.state):
                return True
            if self.closed or time.monotonic() >= deadline:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(0.05, deadline - time.monotonic()))
