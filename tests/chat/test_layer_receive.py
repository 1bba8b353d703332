"""The fan-out's receive (chat.realtime.layerreceive) against a real Redis channel layer."""

import asyncio
import secrets

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from chat.realtime import groupsend, layerreceive

pytestmark = pytest.mark.redis


@pytest.fixture
async def layer():
    config = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"])
    config["prefix"] = f"test-receive-{secrets.token_hex(6)}"
    layer = RedisChannelLayer(**config)
    yield layer
    await layer.flush()
    await layer.close_pools()


async def test_a_backlog_comes_in_one_receive_in_order(layer):
    channel = await layer.new_channel()
    await layer.group_add("everyone", channel)
    for n in range(30):
        await groupsend.group_send(layer, "everyone", {"type": "x", "n": n})
    assert layerreceive.supported(layer)
    got = await layerreceive.receive_many(layer, channel, 200)
    assert [message["n"] for message in got] == list(range(30))
    assert all(message["type"] == "x" for message in got)


async def test_no_more_than_asked_and_the_rest_comes_next(layer):
    channel = await layer.new_channel()
    for n in range(7):
        await layer.send(channel, {"type": "x", "n": n})
    first = await layerreceive.receive_many(layer, channel, 5)
    second = await layerreceive.receive_many(layer, channel, 5)
    assert [m["n"] for m in first] == [0, 1, 2, 3, 4]
    assert [m["n"] for m in second] == [5, 6]


async def test_an_empty_channel_waits_for_the_next_message(layer):
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layerreceive.receive_many(layer, channel, 200))
    await asyncio.sleep(0)  # let the receive reach Redis first; its result is what matters
    assert not waiting.done()
    await layer.send(channel, {"type": "late"})
    assert await asyncio.wait_for(waiting, 10) == [{"type": "late"}]


async def test_messages_the_layer_itself_sends_are_received_whole(layer):
    """What channels-redis writes (its own group_send) reads back unchanged."""
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    message = {"type": "events", "events": [[1, "m", None, [3], "t" * 5000]], "at": 1.5}
    await layer.group_send("g", message)
    assert await layerreceive.receive_many(layer, channel, 200) == [message]


async def test_a_message_for_another_local_channel_is_not_taken_as_ours(layer):
    ours, other = await layer.new_channel(), await layer.new_channel()
    await layer.send(other, {"type": "not-ours"})
    await layer.send(ours, {"type": "ours"})
    assert await layerreceive.receive_many(layer, ours, 200) == [{"type": "ours"}]


def test_the_in_memory_layer_keeps_its_own_receive():
    from channels.layers import InMemoryChannelLayer

    assert not layerreceive.supported(InMemoryChannelLayer())
