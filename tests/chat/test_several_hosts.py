"""Several hosts for real: three application hosts, one killed and one cut off the network.

Each application host is a network namespace of its own (`ip netns`) with
its own address on a bridge, running one server process bound to that
address. PostgreSQL and Redis, private to the test, listen on a third
address, the bridge's, as a database host would. The clients run here and
reach each host over the bridge, the way browsers reach servers.

Clients on every host chat. Then one host's server is killed (SIGKILL) and
another host's link is cut (`ip link set eth0 down`): that server is still
running, but nothing reaches it and nothing leaves it, so its clients learn
it only from a ping that gets no answer. The clients of both reconnect to the
surviving host with `?seq=` and resend what was not acknowledged with the
same nonce, as the page does. In the end every acknowledged message is
stored once and every client has seen every message exactly once, in order.

PostgreSQL is told to give up on a silent peer within seconds (the keepalive
settings docs/operations.md gives for several hosts): a session of the
cut-off host that held the ordering lock would otherwise hold up every write.
"""

import asyncio
import os
import subprocess
from collections import Counter

import pytest
from django.conf import settings

from tests.faults import PrivatePostgres, PrivateRedis, django_env, signed_in_users
from tests.realclients import Streamer, eventually
from tests.servers import ServerProcess, start_server

pytestmark = [pytest.mark.netns, pytest.mark.processes, pytest.mark.postgres, pytest.mark.redis]

HOSTS = ("a", "b", "c")  # a is killed, b is cut off, c survives
PER_CLIENT = 120


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _free_subnet() -> int:
    """A 10.213.N.0/24 no interface here uses yet (parallel runs each take their own)."""
    taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    start = os.getpid() % 200
    for step in range(250):
        n = 1 + (start + step) % 250
        if f" 10.213.{n}." not in taken:
            return n
    raise RuntimeError("no free 10.213.N.0/24 subnet")


class Network:
    """A bridge here (the services' address) and one namespace per application host."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 100_000:05d}"
        self.subnet = _free_subnet()
        self.bridge = f"tcbr{self.tag}"
        self.services = f"10.213.{self.subnet}.1"
        self.namespaces = {host: f"tc-{self.tag}-{host}" for host in HOSTS}
        self.addresses = {host: f"10.213.{self.subnet}.{10 + i}" for i, host in enumerate(HOSTS)}

    def build(self) -> "Network":
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.services}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for i, host in enumerate(HOSTS):
            ns, veth = self.namespaces[host], f"tcv{self.tag}{i}"
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        return self

    def cut(self, host: str) -> None:
        """The host's only link goes down: it runs on, unreachable."""
        ip("-n", self.namespaces[host], "link", "set", "eth0", "down")

    def destroy(self) -> None:
        for ns in self.namespaces.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # its veth goes too
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@pytest.fixture
def network():
    built = Network()
    try:
        yield built.build()
    finally:
        built.destroy()


class Person(Streamer):
    """A page: pings every second (a cut link shows as a ping with no answer)."""

    ping_every = 1.0
    pace = 0.04


def test_clients_of_a_killed_host_and_a_cut_off_host_go_on_on_the_survivor_exactly_once(network):
    pg = PrivatePostgres(
        (network.services,),
        # Give up on a silent client within seconds (docs/operations.md, "Several hosts").
        "tcp_keepalives_idle=1",
        "tcp_keepalives_interval=1",
        "tcp_keepalives_count=2",
        "tcp_user_timeout=3000",
    )
    pg.init().start()
    redis = PrivateRedis((network.services,)).start()
    servers: dict[str, ServerProcess] = {}
    try:
        pg.migrate_template(settings.SECRET_KEY)
        database = pg.new_database().rsplit("/", 1)[1]
        env = django_env(pg.url(database), redis.url, secret_key=settings.SECRET_KEY)
        names = [f"{host}{n}" for host in HOSTS for n in (1, 2)]
        cookies = signed_in_users(env, names)
        for host in HOSTS:
            servers[host] = start_server(
                host=network.addresses[host],
                command_prefix=("ip", "netns", "exec", network.namespaces[host]),
                DATABASE_URL=pg.url(database, host=network.services),
                REDIS_URL=redis.url_on(network.services),
                CHANNEL_LAYER_PREFIX=f"tc-hosts-{network.tag}",
                DJANGO_ALLOWED_HOSTS=",".join(network.addresses.values()),
                CHAT_RATE_LIMIT="1000",
                CHAT_RATE_BURST="1000",
            )
        people = {name: Person(name, cookies[name], count=PER_CLIENT) for name in names}
        everyone = {nonce for person in people.values() for nonce in person.nonces}
        up = set(HOSTS)

        def stored() -> Counter:
            rows = pg.execute(
                "SELECT nonce, count(*) FROM chat_message WHERE nonce = ANY(%s) GROUP BY nonce",
                database,
                (sorted(everyone),),
            )
            return Counter(dict(rows))

        def acked() -> int:
            return sum(len(person.acked()) for person in people.values())

        async def scenario() -> dict[str, int]:
            streams = [
                asyncio.create_task(
                    # Each person's page talks to its own host while that host answers.
                    person.stream(lambda home=name[0]: servers[home if home in up else "c"])
                )
                for name, person in people.items()
            ]

            def going(at_least: int) -> bool:
                failed = [s.exception() for s in streams if s.done() and s.exception()]
                assert not failed, failed
                return acked() >= at_least

            await eventually(lambda: going(len(everyone) // 5), "the conversation going")
            up.discard("a")
            servers["a"].process.kill()  # SIGKILL: no drain, no goodbye
            servers["a"].process.wait()
            await eventually(
                lambda: (
                    all(people[n].hosts[-1:] == [network.addresses["c"]] for n in ("a1", "a2"))
                    and going(len(everyone) * 2 // 5)
                ),
                "the killed host's clients going on on the survivor",
                timeout=30,
            )
            up.discard("b")
            network.cut("b")
            left_to_send = {n: PER_CLIENT - len(people[n].acked()) for n in ("b1", "b2")}

            await asyncio.wait_for(asyncio.gather(*streams), timeout=120)
            for person in people.values():
                await person.until(
                    lambda _, p=person: everyone <= {e.get("nonce") for e in p.messages()},
                    "every message of the conversation",
                    timeout=30,
                )
            for person in people.values():
                await person.close()
            return left_to_send

        left_to_send = asyncio.run(scenario())
        in_the_database = stored()
    finally:
        for server in servers.values():
            server.process.kill()
            server.process.wait()
        redis.stop()
        pg.destroy()

    assert all(left for left in left_to_send.values()), "the link was cut after b's clients ended"
    # The clients of the killed and the cut-off host went on on the survivor.
    survivor = network.addresses["c"]
    for name, person in people.items():
        assert person.hosts[0] == network.addresses[name[0]], (name, person.hosts)
        if name[0] != "c":
            assert person.hosts[-1] == survivor and person.reconnects >= 2, (name, person.hosts)
    # Every acknowledged message is stored, each nonce exactly once.
    assert in_the_database == Counter(dict.fromkeys(everyone, 1))
    for name, person in people.items():
        seen = Counter(e["nonce"] for e in person.messages())
        # Once each, whether it came live, in a catch-up, or as a retry's answer.
        assert seen == Counter(dict.fromkeys(everyone, 1)), (name, seen - Counter(everyone))
        seqs = [e["seq"] for e in person.events if e["type"] != "resumed" and e.get("seq")]
        assert seqs == sorted(set(seqs)), name
