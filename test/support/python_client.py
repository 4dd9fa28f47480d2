#!/usr/bin/python3
"""An independent cuemux client in Python (Debian's python3-grpcio), built from the .proto alone: message classes
come from a FileDescriptorSet made by protoc at test time, no generated code. Prints one JSON object per line.

usage: python_client.py DESCRIPTOR_SET TARGET MEDIA_PATH
"""
import hashlib
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def main() -> None:
    descriptor_set, target, media = sys.argv[1:4]
    fds = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    factory = message_factory.MessageFactory(pool)

    def cls(name):
        return factory.GetPrototype(pool.FindMessageTypeByName("cuemux.v1." + name))

    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])
    service = "/cuemux.v1.MediaServer/"

    def unary(method, req_name, res_name):
        return channel.unary_unary(service + method, request_serializer=cls(req_name).SerializeToString,
                                   response_deserializer=cls(res_name).FromString)

    open_media = unary("OpenMedia", "OpenMediaRequest", "MediaInfo")
    info = open_media(cls("OpenMediaRequest")(path=media), timeout=30)
    print(json.dumps({"media_id": info.media_id, "streams": [
        {"index": s.index, "codec_type": s.codec_type, "codec_name": s.codec_name,
         "time_base": [s.time_base_num, s.time_base_den], "extradata": len(s.extradata)} for s in info.streams]}))
    read = channel.unary_stream(service + "ReadPackets", request_serializer=cls("ReadPacketsRequest").SerializeToString,
                                response_deserializer=cls("PacketBatch").FromString)
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
