"""The event protocol: every event and request round-trips; bad lines and values are named errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_asc.protocol import messages as protocol
from edge_asc.protocol.records import ProtocolError
from edge_asc.protocol.messages import (
    Event,
    Ping,
    Pong,
    Request,
    Scene,
    Segment,
    Set,
    Status,
    Subscribe,
    UnknownTypeError,
)
from .support import ALL_EVENTS, ALL_REQUESTS, make_hello, make_scene


# --- protocol --------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: e.type)
def test_every_event_round_trips(event):
    line = event.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    data = json.loads(line)
    assert data["type"] == event.type and data["v"] == protocol.PROTOCOL_VERSION
    assert Event.from_line(line) == event
    assert type(event).from_line(line) == event


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: r.type)
def test_every_request_round_trips(request_):
    assert Request.from_line(request_.to_line()) == request_


def test_requests_need_no_version_and_tolerate_crlf():
    assert Request.from_line(b'{"type":"set","k":5}\r\n') == Set(k=5)
    assert Request.from_line('{"type":"ping"}') == Ping()


def test_numpy_values_become_plain_json():
    event = Segment(
        np.int64(3), "bus", np.float32(0.5), [{"label": "bus", "distance": np.float32(0.5)}], np.float64(0.9), 1.2, {"total": np.float32(0.7)}
    )
    data = json.loads(event.to_line())
    assert data["index"] == 3 and data["distance"] == 0.5 and data["neighbours"] == [{"label": "bus", "distance": 0.5}]
    assert type(event.index) is int and type(event.neighbours[0].distance) is float
    scene = Scene("bus", np.float64(1.0), {"bus": np.int64(5)}, np.int32(5), "window", 0.0, 1.5, 1.7e9, 0.5, 4)
    assert json.loads(scene.to_line())["votes"] == {"bus": 5}


@pytest.mark.parametrize(
    "line, message",
    [
        (b"hello there", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "empty line"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"k": 5}', 'missing "type"'),
        (b'{"type": 5}', '"type" must be a string'),
        (b'{"type": "scene", "v": 2}', "unsupported protocol version 2"),
        (b'{"type": "scene", "v": "1"}', '"v" must be an integer'),
        (b'{"type": "bogus"}', "unknown event type 'bogus'"),
        (b'{"type": "scene", "label": "bus"}', "scene: missing field 'confidence'"),
        (
            b'{"type":"scene","label":"bus","confidence":"high","votes":{},"k":5,"mode":"window","stream_start_s":0,'
            b'"stream_end_s":1,"wall_time":0,"latency_ms":1,"segment_index":3}',
            "scene.confidence: expected a number, got str 'high'",
        ),
        (
            b'{"type":"scene","label":"bus","confidence":1,"votes":{"bus":1.5},"k":5,"mode":"window","stream_start_s":0,'
            b'"stream_end_s":1,"wall_time":0,"latency_ms":1,"segment_index":3}',
            "scene.votes.bus: expected an integer",
        ),
        (
            b'{"type":"segment","index":1,"label":"bus","distance":1,"neighbours":[{"label":"bus","distance":null}],'
            b'"stream_start_s":0,"stream_end_s":0.3}',
            "segment.neighbours[0].distance: expected a number",
        ),
        (b'{"type":"error","code":"dropped","message":"x","count":true}', "error.count: expected an integer, got bool"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_bad_event_lines_raise_protocol_error(line, message):
    with pytest.raises(ProtocolError) as info:
        Event.from_line(line)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "line, message",
    [
        (b'{"type":"set","K":5}', "set: unknown field 'K'; accepted fields: k, mode, k_max"),
        (b'{"type":"set","k":"5"}', "set.k: expected an integer, got str '5'"),
        (b'{"type":"set","k":0}', "set.k: must be an integer from 1 to 100, got 0"),
        (b'{"type":"set","k":2.5}', "set.k: expected an integer"),
        (b'{"type":"set","mode":"rolling"}', "set.mode: 'rolling' is not accepted; accepted values: window, sliding"),
        (b'{"type":"set"}', "set: give k, mode, k_max or several of them"),
        (b'{"type":"set","k_max":0}', "set.k_max: must be an integer from 1 to 100, got 0"),
        (b'{"type":"set","k_max":true}', "set.k_max: expected an integer"),
        (b'{"type":"subscribe"}', "subscribe: missing field 'events'"),
        (b'{"type":"subscribe","events":"scene"}', "subscribe.events: expected a list"),
        (b'{"type":"subscribe","events":["hello"]}', "'hello' is not an event one subscribes to"),
        (b'{"type":"scene"}', "unknown request type 'scene'"),
    ],
)
def test_bad_requests_raise_protocol_error(line, message):
    with pytest.raises(ProtocolError) as info:
        Request.from_line(line)
    assert message in str(info.value)


def test_building_an_event_checks_values():
    with pytest.raises(ProtocolError, match="scene.confidence: expected a finite number, got nan"):
        Scene("bus", float("nan"), {"bus": 1}, 1, "window", 0.0, 0.3, 0.0, 0.1, 0)
    with pytest.raises(ProtocolError, match="hello.mode: 'rolling' is not accepted"):
        make_hello(mode="rolling")
    with pytest.raises(ProtocolError, match="status.k: expected an integer"):
        Status(1.0, 1, 0, {}, 0, 0, "mic", "5", "window")


def test_unknown_event_fields_are_ignored_and_unknown_types_named():
    data = json.loads(make_scene().to_line())
    data["new_field_from_a_later_daemon"] = [1, 2]
    assert Event.from_line(json.dumps(data)) == make_scene()
    with pytest.raises(UnknownTypeError, match="unknown event type 'weather'"):
        Event.from_line(b'{"type":"weather","v":1}')
    with pytest.raises(ProtocolError, match="expected a 'scene' event, got 'pong'"):
        Scene.from_line(Pong().to_line())


def test_subscribe_drops_repeats_in_order():
    assert Subscribe(["segment", "scene", "segment"]).events == ("segment", "scene")


def test_scene_evidence_and_unknown_round_trip_and_a_scene_without_them_still_parses():
    from edge_asc.protocol.messages import Evidence, Scene, Unknown

    base = make_scene()
    evidence = (Evidence("kitchen", 0.12, "enrolled", offset_s=0.9, enrolment="kitchen@t", enrolled_at="t", source="k.flac"),
                Evidence("bus", 0.3, "model", recording="rec-1", offset_s=12.3))
    scene = Scene(**{**base.__dict__, "label": "unknown", "evidence": evidence, "unknown": Unknown("kitchen", 0.12, 0.05)})
    line = scene.to_line()
    assert Event.from_line(line) == scene
    d = json.loads(line)
    assert d["evidence"][1] == {"label": "bus", "distance": 0.3, "origin": "model", "recording": "rec-1", "offset_s": 12.3}
    assert d["unknown"] == {"nearest": "kitchen", "distance": 0.12, "threshold": 0.05}
    old = json.loads(base.to_line())
    old.pop("evidence")
    assert "unknown" not in old and Event.from_json(old) == base  # a version-1 line of before the evidence


from hypothesis import given, settings, strategies as st  # noqa: E402

REQUEST_PIECES = st.sampled_from(['{"type":"set"', '{"type":"subscribe"', '{"type":"ping"}', ',"k":', ',"mode":', ',"events":',
                                  '"window"', "3", "9" * 5000, "[", "]", "{", "}", "null", '"v":2', "\xff", ",", ":", '"'])


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(REQUEST_PIECES, max_size=30), junk=st.binary(max_size=20))
def test_fuzzed_request_lines_parse_or_fail_in_one_short_line(pieces, junk):
    line = "".join(pieces).encode("utf-8", "surrogateescape") + junk
    try:
        Request.from_line(line)
    except ProtocolError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600


def test_a_request_nested_deeper_than_the_limit_is_refused_in_one_line():
    for line in (b'{"type":"subscribe","events":' + b"[" * 100 + b"]" * 100 + b"}", b"[" * 3000):
        with pytest.raises(ProtocolError, match="nested"):
            Request.from_line(line)
