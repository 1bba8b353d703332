"""Redis commands sent straight to the socket (chat.realtime.sendnow) arrive whole and in order."""

import asyncio
import secrets

import pytest
import redis.asyncio
import redis.exceptions
from django.conf import settings

from chat.realtime import sendnow
from teamchat import redisconn

pytestmark = pytest.mark.redis


class WritesSeen:
    """Records what goes through asyncio's transport instead of straight to the socket."""

    def __init__(self, transport) -> None:
        self.sizes: list[int] = []
        write = transport.write

        def seen_write(data) -> None:
            self.sizes.append(len(data))
            write(data)

        def seen_writelines(chunks) -> None:
            seen_write(b"".join(chunks))

        transport.write, transport.writelines = seen_write, seen_writelines


async def connected(client: redis.asyncio.Redis):
    """The client's one connection, connected, and a spy on its transport."""
    connection = await client.connection_pool.get_connection()
    await connection.connect()
    await client.connection_pool.release(connection)
    assert isinstance(connection, sendnow.RedisConnection)
    return connection, WritesSeen(connection._writer.transport)


@pytest.fixture
async def client():
    client = redisconn.async_client(max_connections=1, wait=5)
    yield client
    await client.aclose()


@pytest.fixture
def key() -> str:
    return f"test-sendnow-{secrets.token_hex(8)}"


async def test_a_command_the_kernel_takes_goes_straight_to_the_socket(client, key):
    _, seen = await connected(client)
    await client.set(key, "hello", ex=60)
    assert await client.get(key) == b"hello"
    assert seen.sizes == []


async def test_what_the_kernel_does_not_take_follows_what_it_took(client, key):
    _, seen = await connected(client)
    value = secrets.token_bytes(1024) * 32 * 1024  # 32 MiB: more than a socket buffer takes
    await client.set(key, value, ex=60)
    assert await client.get(key) == value
    assert len(seen.sizes) == 1
    assert 0 < seen.sizes[0] < len(value)
    # The connection goes on as before.
    await client.delete(key)
    assert await client.exists(key) == 0


async def test_a_pipeline_arrives_in_order(client, key):
    _, seen = await connected(client)
    async with client.pipeline(transaction=True) as pipe:
        for n in range(500):
            pipe.rpush(key, n)
        pipe.expire(key, 60)
        await pipe.execute()
    assert await client.lrange(key, 0, -1) == [str(n).encode() for n in range(500)]
    assert seen.sizes == []


async def test_commands_from_many_tasks_at_once_do_not_mix(key):
    client = redisconn.async_client(max_connections=4, wait=5)
    try:
        values = [secrets.token_hex(n % 50 + 1) * (1 + n % 7 * 2000) for n in range(200)]
        await asyncio.gather(
            *(client.set(f"{key}-{n}", value, ex=60) for n, value in enumerate(values))
        )
        got = await asyncio.gather(*(client.get(f"{key}-{n}") for n in range(200)))
        assert got == [value.encode() for value in values]
    finally:
        await client.aclose()


async def test_a_health_checked_connection_writes_the_ordinary_way(key):
    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL,
        connection_class=sendnow.RedisConnection,
        health_check_interval=1,
        max_connections=1,
    )
    try:
        _, seen = await connected(client)
        await client.set(key, "checked", ex=60)
        assert await client.get(key) == b"checked"
        assert len(seen.sizes) == 2
    finally:
        await client.aclose()


async def test_a_connection_the_server_closed_fails_and_the_next_command_reconnects(client):
    connection, _ = await connected(client)
    client_id = await client.client_id()
    other = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        await other.client_kill_filter(_id=client_id)
    finally:
        await other.aclose()
    with pytest.raises(redis.exceptions.ConnectionError):
        await client.ping()
    assert await client.ping() is True
    assert await client.client_id() != client_id


def test_the_channel_layer_sends_its_commands_at_once():
    host = settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    assert host["connection_class"] is sendnow.RedisConnection
