// What a process presents when it calls a shard, and the channels that present it: a
// bearer token (gRPC metadata `authorization: Bearer <token>`, docs/security.md) added to
// every call by a client interceptor, so no call site can forget it. Every channel to a
// shard (workers, psctl, shard to shard) comes from NewChannel.
//
// Thread-safe: the channels are gRPC's; LoadToken reads the environment and a file.
#ifndef PS_COMMON_CHANNEL_CREDENTIALS_H_
#define PS_COMMON_CHANNEL_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ps {

struct ChannelCredentials {
  std::string token;  // empty: no authorization header
};

// The token a client presents: the contents of `token_file` (surrounding whitespace
// removed) when it is set, else the environment's PS_TOKEN, else none. A file that cannot
// be read, or holds no token, is INVALID_ARGUMENT naming it.
absl::StatusOr<std::string> LoadToken(const std::string& token_file);

// A channel to `address` whose every call carries `credentials`.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          const ChannelCredentials& credentials,
                                          const grpc::ChannelArguments& args = {});

}  // namespace ps

#endif  // PS_COMMON_CHANNEL_CREDENTIALS_H_
