// NewCudaBackend for builds without the CUDA toolkit.
#include "kernels/backend.h"

namespace ps {
namespace kernels {

absl::StatusOr<std::unique_ptr<ComputeBackend>> NewCudaBackend(int, bool) {
  return absl::UnavailableError("this build has no CUDA support (nvcc was not found)");
}

}  // namespace kernels
}  // namespace ps
