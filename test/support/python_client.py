#!/usr/bin/python3
"""An independent cuemux client in Python (Debian's python3-grpcio), built from the .proto alone: message classes
come from a FileDescriptorSet made by protoc at test time, no generated code (scripts/cuemux_proto.py). Prints one
JSON object per line.

usage: python_client.py DESCRIPTOR_SET TARGET MEDIA_PATH
"""
import hashlib
import json
import os
import sys

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from cuemux_proto import CuemuxProto  # noqa: E402


def main() -> None:
    descriptor_set, target, media = sys.argv[1:4]
    api = CuemuxProto(descriptor_set, target)
    cls = api.cls
    open_media = api.unary("OpenMedia", "OpenMediaRequest", "MediaInfo")
    info = open_media(cls("OpenMediaRequest")(path=media), timeout=30)
    print(json.dumps({"media_id": info.media_id, "streams": [
        {"index": s.index, "codec_type": s.codec_type, "codec_name": s.codec_name,
         "time_base": [s.time_base_num, s.time_base_den], "extradata": len(s.extradata)} for s in info.streams]}))
    read = api.stream("ReadPackets", "ReadPacketsRequest", "PacketBatch")
    for batch in read(cls("ReadPacketsRequest")(media_id=info.media_id, start_seconds=-1e9), timeout=60):
        for p in batch.packets:
            print(json.dumps({"stream": p.stream_index, "pts": p.pts if p.HasField("pts") else None,
                              "size": len(p.data), "md5": hashlib.md5(p.data).hexdigest(), "key": p.key}))
    try:
        open_media(cls("OpenMediaRequest")(path="../../etc/passwd"), timeout=30)
    except grpc.RpcError as e:
        print(json.dumps({"error": e.code().name, "details": e.details()}))


if __name__ == "__main__":
    main()
