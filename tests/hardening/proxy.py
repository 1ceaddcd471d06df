"""A loopback TCP proxy that can be told to stop forwarding: a database that is up but answers nothing.

While black-holed, connections are still accepted and whatever either side sends is read and held, never
delivered, as a stopped server's kernel would keep acknowledging it; resuming delivers what was held. No
error ever reaches either side, so only the client's own timeouts can notice.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.workers.procs import free_port


class BlackHoleProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream`` until :meth:`black_hole`, and again after :meth:`resume`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._guard = threading.Lock()
        #: Pumps holding data they may not deliver: a connection whose peer waits for an answer.
        self._held = 0
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    @property
    def held(self) -> int:
        """How many directions of the proxied connections hold undelivered data right now."""
        with self._guard:
            return self._held

    def black_hole(self) -> None:
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        self._forwarding.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._guard:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._guard:
                self._sockets += [client, server]
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True, name="proxy-pump").start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._forwarding.is_set():
                    with self._guard:
                        self._held += 1
                    self._forwarding.wait()
                    with self._guard:
                        self._held -= 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
