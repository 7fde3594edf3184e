"""Repository rule exposing Debian's system libraries as cc_library targets.

Runs pkg-config at load time so link lines follow whatever the installed packages need.
A library whose .pc file is missing falls back to a fixed link line.
"""

# name -> (pkg-config modules, fallback linkopts, extra linkopts)
_LIBS = {
    "grpc": (["grpc++"], ["-lgrpc++", "-lgrpc", "-lgpr"], ["-lgrpc++_reflection"]),
    "protobuf": (["protobuf"], ["-lprotobuf"], []),
    "absl": (
        [
            "absl_status",
            "absl_statusor",
            "absl_flags",
            "absl_flags_parse",
            "absl_flags_reflection",
            "absl_synchronization",
            "absl_strings",
            "absl_str_format",
            "absl_time",
            "absl_hash",
            "absl_raw_hash_set",
        ],
        [],
        [],
    ),
    "glog": (["libglog"], ["-lglog"], []),
    "gflags": (["gflags"], ["-lgflags"], []),
    "zlib": (["zlib"], ["-lz"], []),
    "libzip": (["libzip"], ["-lzip"], []),
    "openblas": (["openblas"], ["-lopenblas"], []),
    "prometheus": (["prometheus-cpp-pull", "prometheus-cpp-core"], ["-lprometheus-cpp-pull", "-lprometheus-cpp-core"], []),
    "gtest": (["gtest"], ["-lgtest"], ["-lpthread"]),
    "gtest_main": (["gtest_main", "gmock"], ["-lgtest_main", "-lgtest", "-lgmock"], ["-lpthread"]),
    "benchmark": (["benchmark"], ["-lbenchmark"], ["-lpthread"]),
}

def _pkg_config(ctx, modules):
    pc = ctx.which("pkg-config")
    if not pc:
        return None
    res = ctx.execute([pc, "--libs"] + modules)
    if res.return_code != 0:
        return None
    return [f for f in res.stdout.strip().split(" ") if f]

def _system_libs_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, (modules, fallback, extra) in _LIBS.items():
        flags = _pkg_config(ctx, modules)
        if flags == None:
            flags = fallback
        lines.append("cc_library(")
        lines.append('    name = "%s",' % name)
        lines.append("    linkopts = %s," % repr(flags + extra))
        if name == "absl":
            # Under --config=tsan, what the uninstrumented Abseil does, told to TSan.
            lines.append('    deps = select({"@//bazel:tsan": ["@//common:tsan_absl_annotations"], "//conditions:default": []}),')
        lines.append(")")
        lines.append("")
    ctx.file("BUILD", "\n".join(lines))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
