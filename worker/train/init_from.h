// InitTablesFromFile: a model file's values as the tables' starting point (ps_worker
// --init_from, docs/model_files.md). The file is an .npz as psctl export writes it: for
// each dense table an array named as the table, of its shape; for each sparse table
// "<name>/keys" (int64, n) and "<name>/values" (n x row width). float64 arrays are taken
// as float32. Arrays that name no table of the model are left alone (logged).
//
// Thread-compatible.
#ifndef PS_WORKER_TRAIN_INIT_FROM_H_
#define PS_WORKER_TRAIN_INIT_FROM_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"

namespace ps {

struct InitFromResult {
  int tables = 0;      // tables given values
  int64_t values = 0;  // floats sent
};

// Reads `path` and assigns every table of `specs` (created before) through `client`.
// INVALID_ARGUMENT naming the file and the array when one is missing, of another shape
// or type, or when the file cannot be read (every table is checked before anything is
// sent); FAILED_PRECONDITION with reason TABLE_TRAINED (a shard's) when a table has
// trained already. A table goes in several requests (by shard and chunk), so parts sent
// before the refusal may have been given: harmless when every worker gives the same
// file, as it must.
absl::StatusOr<InitFromResult> InitTablesFromFile(const std::string& path,
                                                  const std::vector<v1::TableSpec>& specs,
                                                  PsClient* client);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_INIT_FROM_H_
