"""cc_grpc_proto: generates C++ protobuf and gRPC code with the system protoc.

Bazel 4.2.3's native proto_library needs @com_google_protobuf, which cannot be fetched
offline; this macro runs /usr/bin/protoc with grpc_cpp_plugin in a genrule instead and
wraps the outputs in a cc_library.
"""

def cc_grpc_proto(name, src, deps = [], imports = [], visibility = None):
    """Declares <name>, a cc_library with the messages and services of `src`.

    Args:
      name: the cc_library's name.
      src: one .proto file in this package.
      deps: other cc_grpc_proto targets whose protos `src` imports.
      imports: those .proto files themselves (protoc reads them).
      visibility: as for cc_library.
    """
    base = src[:-len(".proto")]
    outs = [base + ".pb.h", base + ".pb.cc", base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    native.genrule(
        name = name + "_gen",
        srcs = [src] + imports,
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=.",
            "--cpp_out=$(GENDIR)",
            "--grpc_out=$(GENDIR)",
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
            "%s/%s" % (pkg, src) if pkg else src,
        ]),
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc", base + ".grpc.pb.cc"],
        hdrs = [base + ".pb.h", base + ".grpc.pb.h"],
        deps = deps + ["@system//:grpc", "@system//:protobuf"],
        visibility = visibility,
    )
