"""Whatever a client sends, the socket answers within the protocol and stays usable.

A property test: hypothesis throws arbitrary frames at the real ASGI
application (text that is not JSON, deep nesting, lone surrogates written as
JSON escapes, control characters, JSON that is not an object, frames of every
real type with fields of the wrong type, binary frames). After each frame the
test sends a probe, a valid `send` with its own nonce, and reads everything up
to the probe's `message` event: what came before it is the frame's answer.
Every answer the server gives to a frame — a direct error, a stored change's
broadcast, a send's result — is on its way to the socket before the probe's
broadcast is, except a send's own result, which the reading waits for.

The property: nothing crashes the socket; every frame but `typing`,
`presence` and `read` gets exactly one answer, the event its type is
accepted with or an `error` with a documented code (and the frame's nonce,
if any); those three get at most one (never an echo of typing); the socket
then still stores a message. The database is up throughout, so no frame may
be answered `unavailable`: that would mean its content made the server fail
(and a client is told to retry it, forever).
"""

import json
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat.models import Event, Membership, Mention, Message, Reaction
from tests.chat.sockets import connect
from tests.factories import MessageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

# docs/protocol.md: the core codes plus the extensions' not_found and forbidden.
DOCUMENTED_CODES = frozenset(
    {
        "invalid_json",
        "binary_not_supported",
        "unknown_type",
        "invalid",
        "too_long",
        "no_such_room",
        "not_member",
        "rate_limited",
        "unavailable",
        "not_found",
        "forbidden",
    }
)
# The event a frame of each type is answered with when it is accepted.
ACCEPTED_AS = {
    "send": {"message", "message_deleted"},  # a retried nonce of a message deleted since
    "edit": {"message_edited"},
    "delete": {"message_deleted"},
    "react": {"reaction"},
    "read": {"read"},
    "read_thread": {"thread_read"},
}
# Frames that may get no answer at all.
QUIET_TYPES = frozenset({"typing", "presence", "read"})
FRAME_TYPES = ("send", "edit", "delete", "react", "read", "read_thread", "typing", "presence")


# --- strategies ---------------------------------------------------------------


@dataclass(frozen=True)
class MessageRef:
    """Stands for the id of a message created for the example (known only at run time)."""

    whose: str  # "own" or "other"


# Strings with lone surrogates; json.dumps writes them as \udxxx escapes.
surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
control_chars = st.characters(max_codepoint=0x1F) | st.characters(
    min_codepoint=0x7F, max_codepoint=0x9F
)
strings = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.one_of(st.characters(), surrogates, control_chars), max_size=12),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False),
    strings,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=10,
)

FIELD_VALUES = {
    "room": st.sampled_from(["general", "nowhere", "GENERAL", "general ", ""]) | json_values,
    "body": st.one_of(
        st.sampled_from(["hi", " ", "a\x00b", "x" * 10_001, "\u202eok\u200b", "**b** @alice"]),
        json_values,
    ),
    "id": st.one_of(
        st.sampled_from([MessageRef("own"), MessageRef("other")]),
        st.integers(min_value=-1, max_value=2**64),
        json_values,
    ),
    "root": st.one_of(
        st.sampled_from([MessageRef("own"), MessageRef("other")]),
        st.integers(min_value=-1, max_value=2**64),
        json_values,
    ),
    "emoji": st.sampled_from(["👍", "🎉", "", "a b", "<b>", "x" * 33]) | json_values,
    "state": st.sampled_from(["active", "away", "offline", "ACTIVE"]) | json_values,
    "nonce": st.one_of(
        st.text(min_size=1, max_size=8),
        st.sampled_from(["", "n" * 64, "n" * 65, "a\nb"]),
        json_values,
    ),
}


@st.composite
def typed_frames(draw) -> dict:
    """A dict whose `type` is a real frame type, with any mix of right and wrong fields."""
    frame: dict = {"type": draw(st.sampled_from(FRAME_TYPES))}
    for name, values in FIELD_VALUES.items():
        if draw(st.booleans()):
            frame[name] = draw(values)
    if draw(st.booleans()):
        frame[draw(strings)] = draw(json_values)  # an unknown extra field
    return frame


# The fields each frame type needs (docs/protocol.md), and values that are right.
NEEDS = {
    "send": ("room", "body"),
    "edit": ("id", "body"),
    "delete": ("id",),
    "react": ("id", "emoji"),
    "read": ("room", "id"),
    "read_thread": ("root", "id"),
    "typing": ("room",),
    "presence": ("state",),
}
printable = st.characters(exclude_categories=("Cs", "Cc"))
RIGHT = {
    "room": st.just("general"),
    "body": st.text(alphabet=printable, min_size=1, max_size=30).filter(str.strip),
    "id": st.sampled_from([MessageRef("own"), MessageRef("other")]),
    "root": st.sampled_from([MessageRef("own"), MessageRef("other")]),
    "emoji": st.sampled_from(["👍", "🎉", "ok"]),
    "state": st.sampled_from(["active", "away"]),
    "nonce": st.text(alphabet=printable, min_size=1, max_size=16),
}


def spliced(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Ordinary text with `inner` somewhere in it."""
    return st.builds(lambda a, b, c: a + b + c, st.text(max_size=4), inner, st.text(max_size=4))


# What breaks a right value: a lone surrogate or a control character (NUL
# included) inside it, or a value of the wrong JSON type.
hostile = st.one_of(
    spliced(surrogates),
    spliced(control_chars),
    st.sampled_from(["general\x00", "\ud83d", "", " "]),
    json_values,
)


@st.composite
def nearly_right_frames(draw) -> dict:
    """A frame the server would accept, with up to two fields dropped or made hostile.

    Random dicts rarely get past the first check; these reach the services.
    """
    kind = draw(st.sampled_from(FRAME_TYPES))
    frame: dict = {"type": kind, **{name: draw(RIGHT[name]) for name in NEEDS[kind]}}
    if draw(st.booleans()):
        frame["nonce"] = draw(RIGHT["nonce"])
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        name = draw(st.sampled_from([*NEEDS[kind], "nonce"]))
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            frame.pop(name, None)
        else:
            frame[name] = draw(hostile)
    return frame


def nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "dict":
        return '{"type":' * depth + "1" + "}" * depth
    return "[" * depth  # never closed


def as_text(value, ascii_only: bool) -> str:
    text = json.dumps(value, ensure_ascii=ascii_only)
    if not ascii_only and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = json.dumps(value)  # a real socket only carries UTF-8: escape surrogates
    return text


# A frame is ("json", value, ascii only?), ("text", str) or ("bytes", bytes). Never
# empty: the test communicator cannot send an empty frame.
frames = st.one_of(
    st.tuples(st.just("json"), nearly_right_frames(), st.booleans()),
    st.tuples(st.just("json"), nearly_right_frames(), st.booleans()),
    st.tuples(st.just("json"), typed_frames(), st.booleans()),
    st.tuples(st.just("json"), json_values, st.booleans()),
    st.tuples(st.just("text"), st.text(min_size=1, max_size=60)),
    st.tuples(st.just("text"), st.text(alphabet=control_chars, min_size=1, max_size=8)),
    st.tuples(
        st.just("text"),
        st.builds(
            nested,
            st.integers(min_value=1, max_value=30_000),
            st.sampled_from(["list", "dict", "open"]),
        ),
    ),
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=40)),
)


# --- the property -----------------------------------------------------------------


@pytest.fixture
def alice(login_cookie, general_room):
    user = UserFactory(username="alice")
    UserFactory(username="bob")
    return user, login_cookie(user)


@pytest.fixture(autouse=True)
def _no_rate_limit():
    # The probes double the sends; the limit has its own test.
    from django.conf import settings as django_settings

    from chat.realtime import consumers

    limiter = consumers.send_limiter
    limiter.rate, limiter.burst = 1e9, 1e9
    limiter.reset()
    yield
    limiter.rate = django_settings.CHAT_RATE_LIMIT
    limiter.burst = float(django_settings.CHAT_RATE_BURST)
    limiter.reset()


def _seed_messages(general) -> dict[str, int]:
    from accounts.models import User

    own = MessageFactory(room=general, author=User.objects.get(username="alice"), body="mine")
    other = MessageFactory(room=general, author=User.objects.get(username="bob"), body="bob's")
    return {"own": own.pk, "other": other.pk}


def _forget_chat_state() -> None:
    """Remove what an example stored, so the next one starts from the same state."""
    Reaction.objects.all().delete()
    Mention.objects.all().delete()
    Event.objects.all().delete()
    Message.objects.all().delete()
    Membership.objects.update(last_read_id=0)


def encode_frame(frame: tuple, ids: dict[str, int]) -> tuple[str, str | bytes]:
    kind = frame[0]
    if kind == "bytes":
        return "bytes", frame[1]
    if kind == "text":
        return "text", frame[1]
    value = json.loads(json.dumps(frame[1], default=lambda ref: ids[ref.whose]))
    return "text", as_text(value, ascii_only=frame[2])


def frame_type(kind: str, data: str | bytes) -> str | None:
    """The frame's `type` as the server will read it, when it is a JSON object."""
    if kind != "text":
        return None
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    kind_field = value.get("type") if isinstance(value, dict) else None
    return kind_field if isinstance(kind_field, str) else None


def frame_nonce(kind: str, data: str | bytes) -> object:
    try:
        value = json.loads(data) if kind == "text" else None
    except (ValueError, RecursionError):
        return None
    return value.get("nonce") if isinstance(value, dict) else None


async def answers_to(sock, probe_nonce: str, needs_answer: bool) -> list[dict]:
    """Everything the socket says before the probe's message, and the frame's own answer."""
    answers: list[dict] = []
    probe_seen = False
    while not probe_seen or (needs_answer and not answers):
        event = await sock.receive(timeout=5)
        if event.get("type") == "message" and event.get("nonce") == probe_nonce:
            assert not probe_seen, f"the probe was delivered twice: {event}"
            probe_seen = True
        else:
            answers.append(event)
    return answers


def check_answer(event: dict, ftype: str | None, nonce: object) -> None:
    if event["type"] == "error":
        assert event["code"] in DOCUMENTED_CODES, event
        # The database is up: a frame must never make the server fail to store.
        assert event["code"] != "unavailable", event
        assert isinstance(event["detail"], str) and event["detail"], event
        assert "nonce" in event and event["seq"] is None, event
        if event["nonce"] is not None:
            assert event["nonce"] == nonce, event
        return
    assert ftype in ACCEPTED_AS and event["type"] in ACCEPTED_AS[ftype], (ftype, event)
    assert isinstance(event["room"], str) and event["room"], event
    if event["type"] == "message":
        assert isinstance(event["id"], int) and isinstance(event["body"], str), event
        assert event["user"] == "alice" and event["nonce"] == nonce, event


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(burst=st.lists(frames, min_size=1, max_size=6))
# Always tried first: frames that once got past the checks into the services.
@example(burst=[("json", {"type": "typing", "room": "general"}, True)])
@example(burst=[("json", {"type": "typing", "room": "general\x00"}, True)])
@example(burst=[("json", {"type": "send", "room": "general", "body": "a\ud800b"}, True)])
@example(burst=[("json", {"type": "send", "room": "general\x00", "body": "b", "nonce": "n"}, True)])
@example(burst=[("json", {"type": "react", "id": MessageRef("own"), "emoji": "\udc00"}, True)])
@example(burst=[("json", {"type": "read", "room": "\ud83d", "id": 1}, True)])
async def test_any_frame_gets_a_protocol_answer_and_the_socket_stays_usable(
    alice, general_room, burst
):
    ids = await sync_to_async(_seed_messages)(general_room)
    sock = await connect(alice[1])
    try:
        for n, frame in enumerate(burst):
            kind, data = encode_frame(frame, ids)
            if kind == "bytes":
                await sock.send_bytes(data)
            else:
                await sock.send_text(data)
            ftype, nonce = frame_type(kind, data), frame_nonce(kind, data)
            probe = f"probe-{n}"
            await sock.send({"type": "send", "room": "general", "body": "probe", "nonce": probe})
            answers = await answers_to(sock, probe, needs_answer=ftype not in QUIET_TYPES)
            # A marker move is written with the others of the next tenth of a
            # second and reaches every tab of the user, so its `read` event may
            # come after a later frame's probe (or an earlier example's, in the
            # next one's socket): it is no answer to the frame it follows.
            for echo in (a for a in answers if a["type"] == "read"):
                check_answer(echo, "read", None)
            answers = [a for a in answers if a["type"] != "read"]
            if ftype in ("typing", "presence"):
                # Never echoed to the sender (presence events are left out by
                # the socket helper): an error at most.
                assert len(answers) <= 1 and all(a["type"] == "error" for a in answers), (
                    frame,
                    answers,
                )
            elif ftype == "read":
                assert len(answers) <= 1, (frame, answers)  # a refusal, at most
            else:
                assert len(answers) == 1, (frame, answers)
            for answer in answers:
                check_answer(answer, ftype, nonce)

        await sock.send({"type": "send", "room": "general", "body": "still here", "nonce": "end"})
        last = await sock.receive(timeout=5)
        while last["type"] == "read":
            last = await sock.receive(timeout=5)
        assert (last["type"], last["body"], last["nonce"]) == ("message", "still here", "end")
    finally:
        await sock.close()
        await sync_to_async(_forget_chat_state)()
