// ParameterStore's restore from a checkpoint: all tables of a file, or none.
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/shard/parameter_store.h"
#include "server/table/optimizer_spec.h"

namespace ps {

absl::Status ParameterStore::RestoreTable(v1::TableCheckpoint* checkpoint) {
  google::protobuf::RepeatedPtrField<v1::TableCheckpoint> one;
  *one.Add() = *checkpoint;
  return RestoreTables(&one);
}

absl::Status ParameterStore::RestoreTables(
    google::protobuf::RepeatedPtrField<v1::TableCheckpoint>* saved) {
  // Every table is rebuilt before any is added: one that does not fit leaves the store
  // empty, and its memory is given back.
  std::map<std::string, std::unique_ptr<DenseTable>> dense;
  std::map<std::string, std::unique_ptr<SparseTable>> sparse;
  for (v1::TableCheckpoint& checkpoint : *saved) {
    // Files written before shards filled in the defaults lack them.
    *checkpoint.mutable_spec()->mutable_optimizer() = WithDefaults(checkpoint.spec().optimizer());
    const std::string& name = checkpoint.spec().name();
    if (dense.count(name) || sparse.count(name)) {
      return absl::DataLossError(absl::StrCat("the checkpoint holds table '", name, "' twice"));
    }
    if (checkpoint.spec().kind() == v1::SPARSE) {
      absl::StatusOr<std::unique_ptr<SparseTable>> t =
          SparseTable::Restore(checkpoint, options_.shard_index, options_.num_shards, budget_);
      if (!t.ok()) return t.status();
      sparse.emplace(name, *std::move(t));
    } else {
      absl::StatusOr<std::unique_ptr<DenseTable>> t =
          DenseTable::Restore(checkpoint, options_.shard_index, options_.num_shards, budget_);
      if (!t.ok()) return t.status();
      dense.emplace(name, *std::move(t));
    }
  }
  absl::MutexLock lock(&tables_mu_);
  for (const auto& [name, t] : dense) {
    if (tables_.count(name) || sparse_.count(name)) {
      return absl::AlreadyExistsError(absl::StrCat("table '", name, "' is already present"));
    }
  }
  for (const auto& [name, t] : sparse) {
    if (tables_.count(name) || sparse_.count(name)) {
      return absl::AlreadyExistsError(absl::StrCat("table '", name, "' is already present"));
    }
  }
  for (auto& [name, t] : dense) tables_.emplace(name, std::move(t));
  for (auto& [name, t] : sparse) sparse_.emplace(name, std::move(t));
  return absl::OkStatus();
}

}  // namespace ps
