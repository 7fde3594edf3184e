// What every PsClient shares: duplicate-key sums, incarnations, and PushPull as a push
// followed by a pull for transports that have nothing better.
#include "worker/client/ps_client.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"

namespace ps {

std::vector<int64_t> SumDuplicateKeys(const std::vector<int64_t>& keys, int width,
                                      const float* grads, std::vector<float>* summed) {
  absl::flat_hash_map<int64_t, size_t> index;
  index.reserve(keys.size());
  std::vector<int64_t> unique;
  summed->clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    auto [it, inserted] = index.emplace(keys[i], unique.size());
    if (inserted) {
      unique.push_back(keys[i]);
      if (width > 0) summed->insert(summed->end(), grads + i * width, grads + (i + 1) * width);
    } else if (width > 0) {
      float* dst = summed->data() + it->second * width;
      for (int c = 0; c < width; ++c) dst[c] += grads[i * width + c];
    }
  }
  return unique;
}

uint64_t PsClient::NewIncarnation() {
  absl::BitGen gen;
  uint64_t n = 0;
  while (n == 0) n = absl::Uniform<uint64_t>(gen);
  return n;
}

PsClient::PushPullResult PsClient::PushPull(const std::vector<DenseTensor>& grads,
                                            const std::vector<DenseTensor>& params,
                                            int worker, int64_t min_version) {
  PushPullResult r;
  r.push = Push(grads, kPerShard, worker);
  if (!r.push.ok()) {
    r.pull = absl::UnavailableError("not pulled: the push failed");
    return r;
  }
  r.pull = Pull(params, min_version, worker);
  return r;
}

namespace {

// PushPullParts for a transport without anything better: the parts are collected and
// sent as one PushPull.
class CollectedPushPull final : public PsClient::PushPullParts {
 public:
  CollectedPushPull(PsClient* client, int worker, int64_t min_version)
      : client_(client), worker_(worker), min_version_(min_version) {}

  void Send(std::vector<DenseTensor> grads, std::vector<DenseTensor> params) override {
    for (DenseTensor& t : grads) grads_.push_back(std::move(t));
    for (DenseTensor& t : params) params_.push_back(std::move(t));
  }

  PsClient::PushPullResult Finish() override {
    return client_->PushPull(grads_, params_, worker_, min_version_);
  }

 private:
  PsClient* const client_;
  const int worker_;
  const int64_t min_version_;
  std::vector<DenseTensor> grads_, params_;
};

}  // namespace

std::unique_ptr<PsClient::PushPullParts> PsClient::StartPushPull(int worker, int64_t min_version) {
  return std::make_unique<CollectedPushPull>(this, worker, min_version);
}

}  // namespace ps
