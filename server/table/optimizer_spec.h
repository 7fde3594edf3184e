// What an OptimizerSpec may hold: its defaults (PyTorch's, applied in one place) and its
// validation (every hyper-parameter in its allowed range, with a message that names it).
//
// Thread-safe: pure functions.
#ifndef PS_SERVER_TABLE_OPTIMIZER_SPEC_H_
#define PS_SERVER_TABLE_OPTIMIZER_SPEC_H_

#include "absl/status/status.h"
#include "proto/v1/ps.pb.h"

namespace ps {

// INVALID_ARGUMENT naming the hyper-parameter and its allowed range when `spec` is not
// usable (e.g. "optimizer adam: beta2=1.5 outside [0, 1)").
absl::Status ValidateOptimizerSpec(const v1::OptimizerSpec& spec);

// `spec` with every absent hyper-parameter set to PyTorch's default for its kind (see
// OptimizerSpec in proto/v1/ps.proto); present ones are kept. The one place defaults
// are applied: shards do it when they create or restore a table.
v1::OptimizerSpec WithDefaults(const v1::OptimizerSpec& spec);
// WithDefaults of a spec holding only `kind` and `learning_rate`.
v1::OptimizerSpec DefaultOptimizerSpec(v1::OptimizerSpec::Kind kind, float learning_rate);

}  // namespace ps

#endif  // PS_SERVER_TABLE_OPTIMIZER_SPEC_H_
