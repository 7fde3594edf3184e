"""Detects the CUDA toolkit at load time.

Writes @local_cuda//:defs.bzl with HAS_CUDA, NVCC and CUDA_PATH so BUILD files can add
CUDA targets only where nvcc exists; the same `bazel build //...` then works on machines
with and without the toolkit. Set PS_DISABLE_CUDA=1 to force a CPU-only build.
"""

def _cuda_configure_impl(ctx):
    nvcc = None
    if ctx.os.environ.get("PS_DISABLE_CUDA", "0") != "1":
        nvcc = ctx.which("nvcc")
        if not nvcc:
            candidate = ctx.path(ctx.os.environ.get("CUDA_PATH", "/usr/local/cuda") + "/bin/nvcc")
            if candidate.exists:
                nvcc = candidate
    if nvcc:
        cuda_path = str(nvcc.dirname.dirname)
        ctx.file("defs.bzl", "HAS_CUDA = True\nNVCC = %r\nCUDA_PATH = %r\n" % (str(nvcc), cuda_path))
        ctx.symlink(cuda_path + "/include", "include")
        ctx.file("BUILD", """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "cuda_headers",
    # Everything: CUDA's headers include extension-less ones such as <nv/target>.
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

cc_library(
    name = "cudart_cublas",
    linkopts = ["-L{p}/lib64", "-Wl,-rpath,{p}/lib64", "-lcublas", "-lcudart"],
    deps = [":cuda_headers"],
)
""".format(p = cuda_path))
    else:
        ctx.file("defs.bzl", "HAS_CUDA = False\nNVCC = None\nCUDA_PATH = None\n")
        ctx.file("BUILD", "")
    ctx.file("WORKSPACE", 'workspace(name = "local_cuda")\n')

cuda_configure = repository_rule(
    implementation = _cuda_configure_impl,
    local = True,
    environ = ["PATH", "CUDA_PATH", "PS_DISABLE_CUDA"],
)
