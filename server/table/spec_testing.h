// The table spec that service-level tests share: a dense table of `n` elements, all 1.0
// at first, updated by plain SGD with learning rate 0.5, so expected values are easy to
// derive by hand (a gradient g moves an element to 1 - 0.5 * g).
#ifndef PS_SERVER_TABLE_SPEC_TESTING_H_
#define PS_SERVER_TABLE_SPEC_TESTING_H_

#include <cstdint>
#include <string>

#include "proto/v1/ps.pb.h"
#include "server/table/optimizer.h"

namespace ps {
namespace testing {

inline v1::TableSpec OnesSgdSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::DENSE);
  spec.add_shape(n);
  spec.mutable_initializer()->set_kind(v1::Initializer::CONSTANT);
  spec.mutable_initializer()->set_value(1.0f);
  *spec.mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.5f);
  spec.set_consistency(mode);
  return spec;
}

}  // namespace testing
}  // namespace ps

#endif  // PS_SERVER_TABLE_SPEC_TESTING_H_
