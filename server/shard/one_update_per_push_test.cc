// A push is one optimizer step, however many slices or requests carry it: the same
// gradients pushed as 1, 2 and 7 slices (in one request, or one request per slice) must
// follow torch.optim's trajectory. The reference values come from
// tests/reference/optimizer_trajectories.py (Debian's python3-torch 1.13).
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/shard/shard.h"
#include "server/table/optimizer.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;

constexpr int kN = 7;
constexpr uint64_t kIncarnation = 0xabc;

std::vector<float> Gradient(int step) {
  std::vector<float> g(kN);
  for (int i = 0; i < kN; ++i) g[i] = 0.5f * static_cast<float>((i * 7 + step * 3) % 11 - 5);
  return g;
}

struct Case {
  std::string name;
  v1::OptimizerSpec optimizer;
  std::vector<float> torch;  // after 6 steps
};

std::vector<Case> Cases() {
  Case adam{"adam", DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f),
            {1.03118765f, 0.97033143f, 1.0106101f, 0.985565722f, 0.975919962f, 1.02797484f,
             0.986025572f}};
  Case adagrad{"adagrad", DefaultOptimizerSpec(v1::OptimizerSpec::ADAGRAD, 0.1f),
               {1.1224581f, 0.869826913f, 1.02019703f, 0.987272739f, 0.797671616f, 1.11900866f,
                0.928005099f}};
  adagrad.optimizer.set_lr_decay(0.01f);
  Case sgd{"sgd_momentum_dampening", DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.1f),
           {2.23417735f, 0.259978443f, 1.29078162f, 0.219985053f, 0.547860503f, 1.85366344f,
            0.260367036f}};
  sgd.optimizer.set_momentum(0.9f);
  sgd.optimizer.set_dampening(0.5f);
  return {adam, adagrad, sgd};
}

// How one push reaches the shard.
enum class Carrier { kOneRequestWithId, kOneRequestPerSlice, kOneRequestWithoutId };

// Runs six pushes of the gradients cut into `slices` pieces; returns the parameters.
std::vector<float> Train(const v1::OptimizerSpec& optimizer, int slices, Carrier carrier) {
  Shard shard{ShardOptions()};
  v1::CreateTableRequest create;
  v1::TableSpec* spec = create.mutable_spec();
  spec->set_name("w");
  spec->set_kind(v1::DENSE);
  spec->add_shape(kN);
  spec->mutable_initializer()->set_kind(v1::Initializer::CONSTANT);
  spec->mutable_initializer()->set_value(1.0f);
  *spec->mutable_optimizer() = optimizer;
  spec->set_consistency(v1::ASYNC);
  v1::CreateTableResponse created;
  EXPECT_TRUE(shard.CreateTable(create, &created).ok());
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  reg.set_incarnation(kIncarnation);
  v1::RegisterWorkerResponse registered;
  EXPECT_TRUE(shard.Register(reg, &registered).ok());

  for (int step = 0; step < 6; ++step) {
    const std::vector<float> g = Gradient(step);
    std::vector<v1::PushRequest> requests(carrier == Carrier::kOneRequestPerSlice ? slices : 1);
    for (int k = 0; k < slices; ++k) {
      const int64_t begin = kN * k / slices, end = kN * (k + 1) / slices;
      const int r = carrier == Carrier::kOneRequestPerSlice ? k : 0;
      v1::PushRequest& request = requests[r];
      request.set_worker_index(0);
      request.set_step(step);
      if (carrier != Carrier::kOneRequestWithoutId) {
        request.mutable_id()->set_incarnation(kIncarnation);
        request.mutable_id()->set_sequence(step + 1);
        request.mutable_id()->set_part(r);
      }
      v1::DenseSlice* d = request.add_dense();
      d->set_table("w");
      d->set_offset(begin);
      d->set_length(end - begin);
      d->set_values(Encode(std::vector<float>(g.begin() + begin, g.begin() + end)));
    }
    for (const v1::PushRequest& request : requests) {
      v1::PushResponse response;
      absl::Status s = shard.Push(request, &response);
      EXPECT_TRUE(s.ok()) << s;
      EXPECT_FALSE(response.duplicate());
    }
  }
  v1::PullRequest pull;
  pull.set_worker_index(-1);
  v1::DenseSlice* d = pull.add_dense();
  d->set_table("w");
  d->set_length(kN);
  v1::PullResponse pulled;
  EXPECT_TRUE(shard.Pull(pull, absl::Now() + absl::Seconds(5), &pulled).ok());
  if (pulled.dense_size() != 1) return {};
  EXPECT_EQ(pulled.dense(0).version(), 6) << "six pushes are six versions";
  return Decode(pulled.dense(0).values());
}

TEST(OneUpdatePerPushTest, OnePushOfAnyNumberOfSlicesFollowsTorchOptim) {
  for (const Case& c : Cases()) {
    for (Carrier carrier : {Carrier::kOneRequestWithId, Carrier::kOneRequestPerSlice,
                            Carrier::kOneRequestWithoutId}) {
      for (int slices : {1, 2, 7}) {
        if (carrier == Carrier::kOneRequestPerSlice && slices == 1) continue;
        const std::vector<float> got = Train(c.optimizer, slices, carrier);
        ASSERT_EQ(got.size(), static_cast<size_t>(kN));
        for (int i = 0; i < kN; ++i) {
          EXPECT_NEAR(got[i], c.torch[i], 2e-6 * std::max(1.0f, std::abs(c.torch[i])))
              << c.name << ", " << slices << " slices, carrier " << static_cast<int>(carrier)
              << ", element " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ps
