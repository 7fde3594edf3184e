"""Detects the CUDA toolkit at load time.

Writes @local_cuda//:defs.bzl with HAS_CUDA, NVCC and CUDA_PATH so BUILD files can add
CUDA targets only where a whole toolkit (nvcc, cuBLAS headers and libraries) exists; the same `bazel build //...` then works on machines
with and without the toolkit. Set PS_DISABLE_CUDA=1 to force a CPU-only build.
"""

def _is_cuda_root(ctx, root):
    """A usable toolkit root has nvcc, the runtime and cuBLAS headers, and the libraries."""
    for rel in ["bin/nvcc", "include/cuda_runtime_api.h", "include/cublas_v2.h", "lib64/libcublas.so", "lib64/libcudart.so"]:
        if not ctx.path(root + "/" + rel).exists:
            return False
    return True

def _cuda_configure_impl(ctx):
    # nvcc on PATH may be a wrapper script (e.g. /usr/local/bin/nvcc exec'ing the real one),
    # so its parent directory is not necessarily the toolkit root. Take the first candidate
    # root that really holds nvcc, the headers and the libraries.
    nvcc = None
    if ctx.os.environ.get("PS_DISABLE_CUDA", "0") != "1":
        candidates = []
        if ctx.os.environ.get("CUDA_PATH"):
            candidates.append(ctx.os.environ["CUDA_PATH"])
        candidates.append("/usr/local/cuda")
        on_path = ctx.which("nvcc")
        if on_path:
            candidates.append(str(on_path.dirname.dirname))
        for root in candidates:
            if _is_cuda_root(ctx, root):
                nvcc = ctx.path(root + "/bin/nvcc")
                break
        if not nvcc and on_path:
            print("nvcc found at %s but no toolkit root with cuBLAS headers and libraries " % on_path +
                  "among %s; building CPU-only" % candidates)
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
