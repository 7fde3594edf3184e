// The gRPC side of one client's calls to its shards: a stub per shard, the deadline
// ClientOptions gives each kind of call, retries of pushes whose reply may have been
// lost, and errors that name the shard by index and address. GrpcPsClient builds the
// requests and reads the replies; this sends them.
//
// Thread safety: every method may be called concurrently (gRPC stubs are thread-safe);
// each batch of calls belongs to the one thread that sends it, which blocks until all of
// them have finished.
#ifndef PS_WORKER_CLIENT_SHARD_STUBS_H_
#define PS_WORKER_CLIENT_SHARD_STUBS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/v1/ps.grpc.pb.h"
#include "worker/client/grpc_calls.h"
#include "worker/client/ps_client.h"
#include "worker/client/same_host_transport.h"

namespace ps {

// Makes the channel to one shard (the ChannelFactory of grpc_ps_client.h).
using MakeChannelFunction = std::function<std::shared_ptr<grpc::Channel>(
    const std::string& address, const grpc::ChannelArguments& args)>;

class ShardStubs {
 public:
  // A stub for each of `servers` (host:port, in shard order), over channels from
  // `make_channel` (plaintext channels when null) that take messages of any size.
  ShardStubs(const std::vector<std::string>& servers, const ClientOptions& options,
             const MakeChannelFunction& make_channel);

  int num_shards() const { return static_cast<int>(servers_.size()); }
  const std::vector<std::string>& servers() const { return servers_; }
  // 0, 1, ..., num_shards() - 1.
  std::vector<int> AllShards() const;

  // `s` as an absl::Status whose message names what failed and the shard (its index and
  // address), with the reason it carried kept.
  absl::Status ShardError(int shard, const char* what, const grpc::Status& s) const;

  // For pulls and pushes: rpc_timeout each, waiting for a shard that is restarting.
  SendOptions RpcOptions() const;

  // SendAll (grpc_calls.h) over these stubs.
  template <typename Request, typename Response, typename Method>
  void Send(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
            const SendOptions& send, Method method) {
    SendAll(calls, shards, stubs_, send, method);
  }

  // Sends the calls, then again, with backoff, those whose status `retry` accepts, for up
  // to push_retry_timeout. Only for requests that carry a push id.
  template <typename Request, typename Response, typename Method, typename Retry>
  void SendWithRetries(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
                       const SendOptions& send, Method method, const Retry& retry) {
    ps::SendWithRetries(calls, shards, stubs_, send, method, retry,
                        {options_.push_retry_timeout, options_.push_retry_backoff,
                         options_.push_retry_max_backoff});
  }

  // Sends `request` to every shard in `targets` at once, each call with its own deadline
  // (connect_timeout when waiting for ready, else control_timeout), so a shard that does
  // not answer delays no other. `responses` gets one reply per target, in order, and
  // `statuses` (when given) one status. Returns the first failure, naming its shard.
  template <typename Request, typename Response, typename Method>
  absl::Status OnShards(const std::vector<int>& targets, const Request& request, Method method,
                        bool wait_for_ready, std::vector<Response>* responses, const char* what,
                        std::vector<grpc::Status>* statuses = nullptr) {
    std::vector<Call<Request, Response>> calls(targets.size());
    for (auto& c : calls) c.request = request;
    SendOptions send;
    send.timeout = wait_for_ready ? options_.connect_timeout : options_.control_timeout;
    send.wait_for_ready = wait_for_ready;
    SendAll(calls, targets, stubs_, send, method);
    responses->clear();
    absl::Status first;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (!calls[i].status.ok() && first.ok()) {
        first = ShardError(targets[i], what, calls[i].status);
      }
      responses->push_back(std::move(calls[i].response));
      if (statuses != nullptr) statuses->push_back(calls[i].status);
    }
    return first;
  }

  // Opens (or grows to `bytes`) the windows of `worker` (of this `incarnation`) on
  // `shard`: the OpenWindowFunction of SameHostTransport. 10 s deadline.
  absl::StatusOr<OpenedWindows> OpenWindow(int shard, int worker, uint64_t incarnation,
                                           int64_t bytes);

 private:
  const std::vector<std::string> servers_;
  const ClientOptions options_;
  std::vector<ShardChannel> stubs_;
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_SHARD_STUBS_H_
