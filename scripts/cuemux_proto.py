"""cuemux's messages and a channel for Python clients built from the .proto alone: message classes come from a
FileDescriptorSet made by protoc (no generated code). Used by test/support/python_client.py and
scripts/bench-serve-client.py (Debian's python3-grpcio and python3-protobuf)."""
import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "/cuemux.v1.MediaServer/"


class CuemuxProto:
    """The cuemux.v1 message classes of a descriptor set, and method stubs on a channel to `target`."""

    def __init__(self, descriptor_set: str, target: str) -> None:
        fds = descriptor_pb2.FileDescriptorSet()
        with open(descriptor_set, "rb") as f:
            fds.ParseFromString(f.read())
        self._pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            self._pool.Add(fd)
        self._factory = message_factory.MessageFactory(self._pool)
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])

    def cls(self, name: str):
        """The message class cuemux.v1.<name>."""
        return self._factory.GetPrototype(self._pool.FindMessageTypeByName("cuemux.v1." + name))

    def unary(self, method: str, req_name: str, res_name: str):
        """A unary-unary stub of MediaServer.<method>."""
        return self.channel.unary_unary(SERVICE + method, request_serializer=self.cls(req_name).SerializeToString,
                                        response_deserializer=self.cls(res_name).FromString)

    def stream(self, method: str, req_name: str, res_name: str):
        """A unary-stream stub of MediaServer.<method>."""
        return self.channel.unary_stream(SERVICE + method, request_serializer=self.cls(req_name).SerializeToString,
                                         response_deserializer=self.cls(res_name).FromString)
