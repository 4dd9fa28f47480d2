#!/usr/bin/python3
"""bench:serve's first-packet latency from an independent client: Debian's python3-grpcio (gRPC's C core, as a C++
player uses), built from the .proto alone (a protoc descriptor set). Same protocol as bench-serve-client.ts 'latency':
10 calls not counted, then n ReadPackets at positions spread over the file, each timed to its first non-empty batch,
then n GetStatus calls. Prints {"ms": [...], "unaryMs": [...]}.

usage: bench-serve-client.py DESCRIPTOR_SET TARGET MEDIA_PATH N BATCH_BYTES
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuemux_proto import CuemuxProto  # noqa: E402


def main() -> None:
    descriptor_set, target, media, n, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    api = CuemuxProto(descriptor_set, target)
    cls = api.cls
    open_media = api.unary("OpenMedia", "OpenMediaRequest", "MediaInfo")
    read = api.stream("ReadPackets", "ReadPacketsRequest", "PacketBatch")
    status = api.unary("GetStatus", "GetStatusRequest", "ServerStatus")
    info = open_media(cls("OpenMediaRequest")(path=media), timeout=30)

    def first_batch(at: float) -> None:
        call = read(cls("ReadPacketsRequest")(media_id=info.media_id, start_seconds=at, max_batch_bytes=batch))
        for b in call:
            if len(b.packets) > 0:
                call.cancel()
                return

    for i in range(10):
        first_batch(((i * 7919) % 1000 + 0.5) / 1000 * info.duration_seconds * 0.95)
    ms = []
    for i in range(n):
        at = ((i * 7919) % 1000) / 1000 * info.duration_seconds * 0.95
        t = time.perf_counter()
        first_batch(at)
        ms.append((time.perf_counter() - t) * 1000)
    unary = []
    for _ in range(n):
        t = time.perf_counter()
        status(cls("GetStatusRequest")())
        unary.append((time.perf_counter() - t) * 1000)
    print(json.dumps({"ms": ms, "unaryMs": unary}))
    api.channel.close()


if __name__ == "__main__":
    main()
