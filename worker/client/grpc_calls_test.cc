// SendAll's credit: at most so many calls in flight to one shard, the rest started as
// calls finish; no network (the method completes calls when the test says so).
#include "worker/client/grpc_calls.h"

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <thread>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using PullCalls = std::vector<Call<v1::PullRequest, v1::PullResponse>>;

// Runs SendAll of `calls` to `shards` with `credit`; completes the calls in flight one at
// a time, oldest first. Returns the most calls in flight at once, per shard.
std::vector<int> MostInFlight(PullCalls* calls, const std::vector<int>& shards, int credit) {
  std::vector<ShardChannel> stubs;
  for (int s = 0; s < 2; ++s) {
    // Never connected: the fake method below sends nothing.
    stubs.emplace_back(std::vector<std::shared_ptr<grpc::Channel>>{
        grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials())});
  }
  absl::Mutex mu;
  std::deque<std::pair<int, std::function<void(grpc::Status)>>> pending;
  std::vector<int> in_flight(2, 0), most(2, 0);
  auto method = [&](ShardChannel& channel, grpc::ClientContext*, const v1::PullRequest*,
                    v1::PullResponse*, std::function<void(grpc::Status)> done) {
    const int shard = static_cast<int>(&channel - stubs.data());
    absl::MutexLock lock(&mu);
    most[shard] = std::max(most[shard], ++in_flight[shard]);
    pending.emplace_back(shard, std::move(done));
  };
  SendOptions send;
  send.timeout = absl::Seconds(30);
  send.max_in_flight_per_shard = credit;
  std::thread sender([&] { SendAll(*calls, shards, stubs, send, method); });
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  size_t finished = 0;
  while (finished < calls->size() && absl::Now() < give_up) {
    std::function<void(grpc::Status)> done;
    {
      absl::MutexLock lock(&mu);
      if (!pending.empty()) {
        --in_flight[pending.front().first];
        done = std::move(pending.front().second);
        pending.pop_front();
      }
    }
    if (!done) {
      absl::SleepFor(absl::Milliseconds(1));
      continue;
    }
    done(grpc::Status::OK);  // may start the shard's next call
    ++finished;
  }
  if (finished < calls->size()) {
    // A call held back and never started: SendAll would wait for it forever.
    std::fprintf(stderr, "SendAll left calls unstarted or unfinished after 20 s\n");
    std::abort();
  }
  sender.join();
  return most;
}

TEST(SendAllTest, TheCreditBoundsTheCallsInFlightToEachShard) {
  const std::vector<int> shards = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
  PullCalls calls(shards.size());
  EXPECT_EQ(MostInFlight(&calls, shards, 2), (std::vector<int>{2, 2}));
  for (const auto& c : calls) EXPECT_TRUE(c.status.ok());
  PullCalls unlimited(shards.size());
  EXPECT_EQ(MostInFlight(&unlimited, shards, 0), (std::vector<int>{7, 3}));
  PullCalls ample(shards.size());
  EXPECT_EQ(MostInFlight(&ample, shards, 16), (std::vector<int>{7, 3}));
}

}  // namespace
}  // namespace ps
