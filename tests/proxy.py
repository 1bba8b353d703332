"""A TCP relay a test can cut: one server process's link to Redis, failing on demand.

Either the whole link (`cut`), or only the connections that carry given bytes
towards Redis (`refuse_carrying`): the command is never forwarded and its
connection drops, as when the network fails mid-command, while every other
command on other connections goes through.
"""

import socket
import threading


class CuttableRelay:
    """Relays 127.0.0.1:`port` to `target`; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        self._refused: tuple[bytes, ...] = ()
        self.refused = 0  # connections dropped by `refuse_carrying`
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst, outward in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, outward), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outward: bool) -> None:
        tail = b""  # a marker may straddle two reads
        try:
            while data := src.recv(65536):
                if outward and self._refused:
                    seen = tail + data
                    if any(marker in seen for marker in self._refused):
                        with self._lock:
                            self.refused += 1
                        break  # dropped unsent; `finally` closes both ends
                    tail = seen[-256:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            victims = list(self._open)
        for sock in victims:
            self._close(sock)

    def refuse_carrying(self, *markers: bytes) -> None:
        """From now on, drop (unsent) every connection that sends one of `markers` to Redis."""
        assert all(0 < len(marker) <= 256 for marker in markers)
        self._refused = markers

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()
