// The gRPC implementation of PsClient: only its factories are public.
//
// Thread-safe, as PsClient.
#ifndef PS_WORKER_CLIENT_GRPC_PS_CLIENT_H_
#define PS_WORKER_CLIENT_GRPC_PS_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "worker/client/ps_client.h"

namespace ps {

// A client over gRPC to `servers` (host:port, in shard order).
std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options = ClientOptions());

// Makes the channel to one shard; tests use it to add interceptors (for example to drop
// replies and force retries).
using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(
    const std::string& address, const grpc::ChannelArguments& args)>;

// A client over gRPC to `servers` (host:port, in shard order) whose channels come from
// `make_channel` (plaintext channels when null).
std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options,
                                          ChannelFactory make_channel);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_GRPC_PS_CLIENT_H_
