"""QuorumChannel over a loopback socket: packets, a SNAP sync mid-stream, bad input."""

from __future__ import annotations

import asyncio

from zookapter.protocol.consts import Op
from zookapter.protocol.records import ACL, Id
from zookapter.protocol.txns import CreateTxn, Txn
from zookapter.quorum.channel import QuorumChannel
from zookapter.quorum.packets import PacketType, QuorumPacket
from zookapter.server.datatree import DataTree
from zookapter.storage.snapshot import parse_wire_snapshot, serialize_wire_snapshot


def _tree(n: int) -> DataTree:
    tree = DataTree()
    acl = (ACL(31, Id("world", "anyone")),)
    for z in range(1, n + 1):
        tree.apply(Txn(7, z, z, 1000, Op.CREATE, CreateTxn(f"/n{z}", b"d" * 50, acl, False, 0)))
    return tree


def _parsed(body: bytes) -> tuple[int, dict[int, int]]:
    tree, sessions, end = parse_wire_snapshot(body, signed=False)
    assert end == len(body)
    return len(tree.nodes), sessions


async def _pair():
    got: list = []
    closed = asyncio.Event()
    loop = asyncio.get_running_loop()

    def factory() -> QuorumChannel:
        return QuorumChannel(lambda ch, p: got.append(("pkt", p.type, p.zxid)),
                             lambda ch, b: got.append(("snap", *_parsed(b))),
                             lambda ch: closed.set())

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    return server, writer, got, closed


def test_packets_and_a_snap_sync_in_one_stream() -> None:
    async def run() -> None:
        server, writer, got, closed = await _pair()
        tree = _tree(3000)
        stream = (QuorumPacket(PacketType.LEADERINFO, 1 << 32, b"\x00\x01\x00\x00").encode()
                  + QuorumPacket(PacketType.SNAP, 3000).encode()
                  + serialize_wire_snapshot(tree, {7: 4000})
                  + QuorumPacket(PacketType.NEWLEADER, 1 << 32, b"cfg").encode()
                  + QuorumPacket(PacketType.UPTODATE, -1).encode())
        for i in range(0, len(stream), 1500):  # many small writes
            writer.write(stream[i:i + 1500])
            await writer.drain()
        for _ in range(200):
            if len(got) == 5:
                break
            await asyncio.sleep(0.01)
        assert got == [("pkt", PacketType.LEADERINFO, 1 << 32), ("pkt", PacketType.SNAP, 3000),
                       ("snap", len(tree.nodes), {7: 4000}),
                       ("pkt", PacketType.NEWLEADER, 1 << 32), ("pkt", PacketType.UPTODATE, -1)]
        writer.close()
        await asyncio.wait_for(closed.wait(), 5)
        server.close()
    asyncio.run(run())


def test_garbage_closes_the_connection() -> None:
    async def run() -> None:
        server, writer, got, closed = await _pair()
        writer.write(b"\x00\x00\x00\x05" + b"\x00" * 8 + b"\x7f\xff\xff\xff")  # absurd length
        await writer.drain()
        await asyncio.wait_for(closed.wait(), 5)
        assert got == []
        writer.close()
        server.close()
    asyncio.run(run())
