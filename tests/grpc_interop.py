#!/usr/bin/env python3
"""Checks a ps_server with a stock gRPC client that shares no code with the project.

Usage: grpc_interop.py HOST:PORT

Uses only the `grpc` package (Debian's python3-grpcio): the health and reflection
services are called as raw methods with hand-encoded protobuf bytes, as grpc_health_probe
or grpcurl would send them, so neither grpcio-health-checking nor grpcio-reflection is
needed. Exit status: 0 ok, 1 a check failed, 77 the grpc module is missing.
"""

import sys

try:
    import grpc
except ImportError:
    print("grpc module not available", file=sys.stderr)
    sys.exit(77)

TIMEOUT_S = 5


def identity(b):
    return b


def varint(data, i):
    """Decodes the varint at data[i]; returns (value, next index)."""
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data):
    """Yields (field number, value) of a protobuf message; value is int or bytes."""
    i = 0
    while i < len(data):
        key, i = varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(data, i)
        elif wire == 2:
            length, i = varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield number, value


def string_field(number, text):
    raw = text.encode()
    assert len(raw) < 128
    return bytes([(number << 3) | 2, len(raw)]) + raw


def health(channel, service):
    """Returns HealthCheckResponse.status for `service` (1 SERVING, 2 NOT_SERVING)."""
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=identity, response_deserializer=identity)
    reply = check(string_field(1, service) if service else b"", timeout=TIMEOUT_S)
    return dict(fields(reply)).get(1, 0)


def reflect(channel, request):
    """Sends one ServerReflectionRequest and returns the fields of the one response."""
    info = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                 request_serializer=identity, response_deserializer=identity)
    replies = list(info(iter([request]), timeout=TIMEOUT_S))
    if len(replies) != 1:
        raise AssertionError("expected one reflection reply, got %d" % len(replies))
    return list(fields(replies[0]))


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    address = sys.argv[1]
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)

    failures = []
    for service in ("", "ps.v1.ParameterServer", "ps.v1.Admin"):
        status = health(channel, service)
        print("health %r: %d" % (service, status))
        if status != 1:
            failures.append("health of %r is %d, not SERVING (1)" % (service, status))
    try:
        health(channel, "no.such.Service")
        failures.append("health of an unknown service did not fail")
    except grpc.RpcError as e:
        print("health 'no.such.Service': %s" % e.code().name)
        if e.code() != grpc.StatusCode.NOT_FOUND:
            failures.append("health of an unknown service gave %s, not NOT_FOUND" % e.code())

    # ServerReflectionRequest{list_services: ""} (field 7) -> list_services_response
    # (field 6) -> repeated ServiceResponse service (field 1) -> name (field 1).
    services = []
    for number, value in reflect(channel, string_field(7, "")):
        if number == 6:
            for n, service in fields(value):
                if n == 1:
                    services += [v.decode() for k, v in fields(service) if k == 1]
    print("services: " + " ".join(sorted(services)))
    for want in ("ps.v1.ParameterServer", "ps.v1.Admin", "grpc.health.v1.Health"):
        if want not in services:
            failures.append("reflection does not list " + want)

    # ServerReflectionRequest{file_containing_symbol: "ps.v1.Admin"} (field 4) ->
    # file_descriptor_response (field 4) -> FileDescriptorProto bytes (field 1), whose
    # field 6 is each service: name (1) and methods (2, each with name 1).
    methods = []
    for number, value in reflect(channel, string_field(4, "ps.v1.Admin")):
        if number == 4:
            for n, proto in fields(value):
                if n != 1:
                    continue
                for k, service in fields(proto):
                    if k == 6 and dict(fields(service)).get(1) == b"Admin":
                        methods += [dict(fields(m))[1].decode()
                                    for f, m in fields(service) if f == 2]
    print("ps.v1.Admin methods: " + " ".join(methods))
    if sorted(methods) != ["Checkpoint", "ClusterStatus", "Watch"]:
        failures.append("reflection describes ps.v1.Admin with methods %s" % methods)

    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    if not failures:
        print("ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
