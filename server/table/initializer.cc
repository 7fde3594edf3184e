#include "server/table/initializer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/placement.h"

namespace ps {
namespace {

// A uniform double in [0, 1) from 53 random bits of (seed, index, stream).
double Uniform01(uint64_t seed, int64_t index, uint64_t stream) {
  const uint64_t bits = MixBits(MixBits(seed ^ (stream * 0xd1b54a32d192ed03ULL)) +
                                static_cast<uint64_t>(index));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

absl::Status ValidateInitializer(const v1::Initializer& init) {
  switch (init.kind()) {
    case v1::Initializer::ZEROS:
      return absl::OkStatus();
    case v1::Initializer::CONSTANT:
      if (!std::isfinite(init.value())) {
        return absl::InvalidArgumentError(
            absl::StrCat("initializer constant: value=", init.value(), " is not finite"));
      }
      return absl::OkStatus();
    case v1::Initializer::UNIFORM:
      if (!std::isfinite(init.low()) || !std::isfinite(init.high()) ||
          init.low() > init.high()) {
        return absl::InvalidArgumentError(absl::StrCat("initializer uniform: need finite low <= high, got low=",
                                                       init.low(), " high=", init.high()));
      }
      return absl::OkStatus();
    case v1::Initializer::NORMAL:
      if (!std::isfinite(init.mean()) || !std::isfinite(init.stddev()) || init.stddev() < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "initializer normal: need finite mean and stddev >= 0, got mean=", init.mean(),
            " stddev=", init.stddev()));
      }
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("initializer: unknown kind ", static_cast<int>(init.kind())));
  }
}

void FillInitial(const v1::Initializer& init, int64_t first, int64_t n, float* out) {
  const uint64_t seed = init.seed();
  switch (init.kind()) {
    case v1::Initializer::CONSTANT:
      for (int64_t i = 0; i < n; ++i) out[i] = init.value();
      return;
    case v1::Initializer::UNIFORM: {
      const double lo = init.low(), span = static_cast<double>(init.high()) - init.low();
      const float hi = init.high();
      for (int64_t i = 0; i < n; ++i) {
        const float v = static_cast<float>(lo + span * Uniform01(seed, first + i, 0));
        // Rounding to float can reach `high` itself; keep the interval half-open.
        out[i] = v < hi ? v : std::nextafter(hi, init.low());
      }
      return;
    }
    case v1::Initializer::NORMAL:
      // Box-Muller on two independent uniforms per element.
      for (int64_t i = 0; i < n; ++i) {
        const double u1 = 1.0 - Uniform01(seed, first + i, 1);  // (0, 1]
        const double u2 = Uniform01(seed, first + i, 2);
        const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        out[i] = static_cast<float>(init.mean() + init.stddev() * z);
      }
      return;
    case v1::Initializer::ZEROS:
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = 0.0f;
      return;
  }
}

}  // namespace ps
