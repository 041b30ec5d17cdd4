"""In-process TCP proxy between ensemble peers, so tests can partition and heal.

Owns: one listening port per directed peer link (src -> dst) and per channel
("quorum", "election"), an asyncio loop on a background thread that forwards
each accepted connection to the destination's real port, and the partition
controls (`block`, `heal`). Each member's zoo.cfg points its `server.M` lines
(M != itself) at the proxy ports of its own outgoing links, so every byte
between two peers crosses exactly one link whose owner is known.

A blocked link either drops (closes existing connections, accepts and closes
new ones: peers see resets quickly) or blackholes (connections stay open but
nothing is forwarded: peers only notice through their own timeouts).

ZooKeeper's election channel needs one rewrite: the connecting peer sends an
initial message carrying its own election address, and a peer with a higher
id closes that connection and dials back to the advertised address. Left
alone, the dial-back would bypass the proxy, so the proxy replaces the
advertised address with the proxy port of the reverse link.
"""

import asyncio
import socket
import struct
import threading

HOST = "127.0.0.1"
# Bounded waits, in seconds.
LOOP_START_TIMEOUT_S = 5.0
CONTROL_TIMEOUT_S = 5.0
UPSTREAM_CONNECT_TIMEOUT_S = 2.0
INITIAL_MESSAGE_TIMEOUT_S = 5.0
# ZooKeeper refuses an initial message address longer than this too.
INITIAL_ADDRESS_BYTES_MAX = 4096
PUMP_CHUNK_BYTES = 65536

MODE_DROP = "drop"
MODE_BLACKHOLE = "blackhole"


class Link:
    """One directed channel src -> dst on a proxy port, forwarding to target_port."""

    def __init__(self, src, dst, channel, target_port):
        self.src = src
        self.dst = dst
        self.channel = channel
        self.target_port = target_port
        self.port = None
        self.server = None
        self.blocked = None  # None, MODE_DROP or MODE_BLACKHOLE
        self.writers = set()
        self.forwarded = 0

    def __repr__(self):
        return f"Link({self.src}->{self.dst} {self.channel} :{self.port}->:{self.target_port})"


class Proxy:
    """All links of one cluster; thread-safe controls over an asyncio loop thread."""

    def __init__(self):
        self.links = {}
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ensemble-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(LOOP_START_TIMEOUT_S):
            raise RuntimeError("proxy loop did not start")

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CONTROL_TIMEOUT_S)

    # ------------------------------------------------------------ setup

    def add_link(self, src, dst, channel, target_port):
        """Listen for src -> dst traffic on `channel`; returns the proxy port."""
        link = Link(src, dst, channel, target_port)
        self._call(self._listen(link))
        self.links[(src, dst, channel)] = link
        return link.port

    async def _listen(self, link):
        link.server = await asyncio.start_server(
            lambda r, w: self._accept(link, r, w), HOST, 0, reuse_address=True
        )
        link.port = link.server.sockets[0].getsockname()[1]

    def port(self, src, dst, channel):
        return self.links[(src, dst, channel)].port

    # ------------------------------------------------------------ controls

    def block(self, a, b, mode=MODE_DROP):
        """Cut every channel between a and b, both directions."""
        self._call(self._set_blocked(self._pair_links(a, b), mode))

    def partition(self, side_a, side_b, mode=MODE_DROP):
        """Cut every link between the two groups of member ids."""
        links = [l for a in side_a for b in side_b for l in self._pair_links(a, b)]
        self._call(self._set_blocked(links, mode))

    def heal(self):
        """Reopen every link; connections left over from a blackhole are closed."""
        self._call(self._set_blocked(list(self.links.values()), None))

    def _pair_links(self, a, b):
        return [l for l in self.links.values() if {l.src, l.dst} == {a, b}]

    async def _set_blocked(self, links, mode):
        for link in links:
            was = link.blocked
            link.blocked = mode
            # A stream that lost bytes to a blackhole is garbage: close it on heal too.
            if mode == MODE_DROP or (mode is None and was == MODE_BLACKHOLE):
                for writer in list(link.writers):
                    _close(writer)
                link.writers.clear()

    def close(self):
        if self.loop.is_closed():
            return
        try:
            self._call(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CONTROL_TIMEOUT_S)

    async def _shutdown(self):
        for link in self.links.values():
            link.server.close()
            for writer in list(link.writers):
                _close(writer)

    # ------------------------------------------------------------ forwarding

    async def _accept(self, link, reader, writer):
        if link.blocked == MODE_DROP:
            _close(writer)
            return
        link.writers.add(writer)
        if link.blocked == MODE_BLACKHOLE:
            await _drain_forever(reader)
            _close(writer)
            link.writers.discard(writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, link.target_port), UPSTREAM_CONNECT_TIMEOUT_S
            )
        except (OSError, asyncio.TimeoutError):
            _close(writer)
            link.writers.discard(writer)
            return
        link.writers.add(up_writer)
        link.forwarded += 1
        try:
            if link.channel == "election":
                await self._rewrite_initial_message(link, reader, up_writer)
            await asyncio.gather(
                self._pump(link, reader, up_writer), self._pump(link, up_reader, writer)
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
            pass
        finally:
            for w in (writer, up_writer):
                _close(w)
                link.writers.discard(w)

    async def _pump(self, link, reader, writer):
        try:
            while True:
                data = await reader.read(PUMP_CHUNK_BYTES)
                if not data or link.blocked == MODE_DROP:
                    break
                if link.blocked == MODE_BLACKHOLE:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            _close(writer)

    async def _rewrite_initial_message(self, link, reader, up_writer):
        """Point the advertised election address at the reverse link's proxy port."""
        head = await asyncio.wait_for(reader.readexactly(8), INITIAL_MESSAGE_TIMEOUT_S)
        (version,) = struct.unpack(">q", head)
        if version >= 0:
            # Pre-3.5 form: the first long is the sid, no address follows.
            up_writer.write(head)
            return
        rest = await asyncio.wait_for(reader.readexactly(12), INITIAL_MESSAGE_TIMEOUT_S)
        sid, length = struct.unpack(">qi", rest)
        if length < 0 or length > INITIAL_ADDRESS_BYTES_MAX:
            raise ValueError(f"initial message address length {length}")
        await asyncio.wait_for(reader.readexactly(length), INITIAL_MESSAGE_TIMEOUT_S)
        reverse = self.links.get((link.dst, link.src, "election"))
        address = f"{HOST}:{reverse.port if reverse else link.target_port}".encode()
        up_writer.write(head + struct.pack(">qi", sid, len(address)) + address)


async def _drain_forever(reader):
    try:
        while await reader.read(PUMP_CHUNK_BYTES):
            pass
    except OSError:
        pass


def _close(writer):
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # RST rather than FIN: a peer must not mistake a cut for a clean close.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
    except (OSError, RuntimeError):
        pass
