"""Publishing to a group in two round trips: what channels-redis's own receive reads back."""

import asyncio
import time
import uuid

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from chat.realtime import groupsend
from teamchat import redisconn


@pytest.fixture
def layer():
    """A layer of its own on the suite's Redis, with small capacities to fill."""
    prefix = f"gs-{uuid.uuid4().hex[:8]}"
    made = RedisChannelLayer(
        hosts=[settings.REDIS_URL],
        prefix=prefix,
        capacity=3,
        channel_capacity={"small": 1},
        expiry=60,
        group_expiry=30,
    )
    yield made
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def run(coro):
    return asyncio.run(coro)


async def _joined(layer, *names):
    channels = []
    for name in names:
        channel = await layer.new_channel() if name == "specific" else name
        await layer.group_add("everyone", channel)
        channels.append(channel)
    return channels


@pytest.mark.parametrize("how", ["async", "sync"])
def test_every_member_channel_receives_the_message_as_channels_redis_sends_it(layer, how):
    async def scenario():
        local, plain = await _joined(layer, "specific", "plain")
        message = {"type": "chat.events", "events": [["x", "ünïcode"]], "at": 1.5}
        if how == "async":
            full = await groupsend.group_send(layer, "everyone", message)
        else:
            client = redisconn.sync_client()
            full = await asyncio.to_thread(
                groupsend.group_send_sync, client, layer, "everyone", message
            )
            client.close()
        assert full == 0
        got = [await layer.receive(local), await layer.receive(plain)]
        # The same message again through the layer's own group_send: the same result.
        await layer.group_send("everyone", message)
        again = [await layer.receive(local), await layer.receive(plain)]
        await layer.flush()
        return got, again

    got, again = run(scenario())
    assert (
        got
        == again
        == [
            {"type": "chat.events", "events": [["x", "ünïcode"]], "at": 1.5},
            {"type": "chat.events", "events": [["x", "ünïcode"]], "at": 1.5},
        ]
    )


def test_a_full_channel_drops_the_message_and_is_counted_the_others_still_get_it(layer, caplog):
    async def scenario():
        small, roomy = await _joined(layer, "small", "roomy")
        first = await groupsend.group_send(layer, "everyone", {"type": "t", "n": 1})
        second = await groupsend.group_send(layer, "everyone", {"type": "t", "n": 2})
        got_small = [await layer.receive(small)]
        got_roomy = [await layer.receive(roomy), await layer.receive(roomy)]
        await layer.flush()
        return first, second, got_small, got_roomy

    first, second, got_small, got_roomy = run(scenario())
    assert (first, second) == (0, 1)
    assert [m["n"] for m in got_small] == [1]
    assert [m["n"] for m in got_roomy] == [1, 2]
    assert "1 of 2 channels over capacity in group everyone" in caplog.text


def test_it_works_on_a_redis_that_does_not_know_the_script_yet(layer):
    redis.Redis.from_url(settings.REDIS_URL).script_flush()

    async def scenario():
        (plain,) = await _joined(layer, "plain")
        await groupsend.group_send(layer, "everyone", {"type": "t", "n": 1})
        got = await layer.receive(plain)
        await layer.flush()
        return got

    assert run(scenario()) == {"type": "t", "n": 1}


def test_members_past_the_group_expiry_get_nothing_and_leave_the_group(layer):
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = layer._group_key("everyone")

    async def scenario():
        (fresh,) = await _joined(layer, "fresh")
        # A member added long ago and never refreshed: its process is gone.
        client.zadd(key, {"gone": int(time.time()) - 3600})
        await groupsend.group_send(layer, "everyone", {"type": "t", "n": 1})
        got = await layer.receive(fresh)
        members, written = client.zrange(key, 0, -1), client.exists(layer.prefix + "gone")
        await layer.flush()
        return got, members, written

    got, members, written = run(scenario())
    client.close()
    assert got == {"type": "t", "n": 1}
    assert members == [b"fresh"]
    assert written == 0


def test_an_empty_group_is_no_error_and_nobody_is_full(layer):
    assert run(groupsend.group_send(layer, "nobody", {"type": "t"})) == 0


def test_a_layer_without_what_it_relies_on_uses_its_own_group_send(caplog, monkeypatch):
    monkeypatch.setattr(groupsend.supported, "logged", False)

    class Other:
        __module__ = "channels_redis.somewhere"

    assert groupsend.supported(Other()) is False
    assert "publishing through its own group_send" in caplog.text
    from channels.layers import InMemoryChannelLayer

    assert groupsend.supported(InMemoryChannelLayer()) is False
