// grpc_echo_benchmark: the floor a unary gRPC call sets on this machine, measured the way
// pushpull_benchmark measures pushes (tests/bench.sh runs both): a server that answers
// every call with a 1-byte reply (--reply=push, as a push's acknowledgement) or echoes the
// request's bytes (--reply=echo, as a pull), both on gRPC's callback API, and a client
// that sends one request of each size at a time and reports GB/s, p50 and p99.
//
//   grpc_echo_benchmark --serve --port_file=/tmp/echo_port &
//   grpc_echo_benchmark --server=127.0.0.1:$(cat /tmp/echo_port) --sizes=4096,1048576
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/malloc_tuning.h"

ABSL_FLAG(bool, serve, false, "Run the server (else the client).");
ABSL_FLAG(std::string, port_file, "", "Server: write the port it listens on here.");
ABSL_FLAG(std::string, server, "127.0.0.1:50052", "Client: the server's address.");
ABSL_FLAG(std::string, sizes, "4096,65536,1048576,16777216", "Client: request bytes.");
ABSL_FLAG(std::string, reply, "push", "push: a 1-byte reply; echo: the request's bytes back.");
ABSL_FLAG(double, seconds, 2.0, "Client: time per size.");

namespace {

// Reads one request and answers it (1 byte, or the request itself under "echo").
class Echo final : public grpc::ServerGenericBidiReactor {
 public:
  Echo() { StartRead(&request_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (absl::GetFlag(FLAGS_reply) == "echo") {
      reply_ = request_;
    } else {
      grpc::Slice one(std::string(1, 'k'));
      reply_ = grpc::ByteBuffer(&one, 1);
    }
    StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer request_, reply_;
};

class EchoService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    return new Echo;
  }
};

int Serve() {
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return 1;
  if (!absl::GetFlag(FLAGS_port_file).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_port_file)) << port << "\n";
  }
  std::printf("grpc_echo_benchmark: serving on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  server->Wait();
  return 0;
}

int Client() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  grpc::GenericStub stub(grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                                   grpc::InsecureChannelCredentials(), args));
  std::printf("%-10s %10s %10s %10s\n", "payload", "GB/s", "p50 us", "p99 us");
  for (absl::string_view text : absl::StrSplit(absl::GetFlag(FLAGS_sizes), ',')) {
    int64_t bytes = 0;
    if (!absl::SimpleAtoi(text, &bytes) || bytes < 1) return 2;
    grpc::Slice payload(std::string(bytes, 'x'));
    const grpc::ByteBuffer request(&payload, 1);
    std::vector<double> lat;
    const absl::Time start = absl::Now();
    const absl::Time end = start + absl::Seconds(absl::GetFlag(FLAGS_seconds));
    while (absl::Now() < end || lat.size() < 5) {
      grpc::ClientContext ctx;
      grpc::ByteBuffer reply;
      grpc::Status status;
      absl::Notification done;
      const absl::Time t0 = absl::Now();
      stub.UnaryCall(&ctx, "/bench.Echo/Call", {}, &request, &reply, [&](grpc::Status s) {
        status = std::move(s);
        done.Notify();
      });
      done.WaitForNotification();
      if (!status.ok()) {
        std::fprintf(stderr, "grpc_echo_benchmark: %s\n", status.error_message().c_str());
        return 1;
      }
      lat.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
    }
    const double total = absl::ToDoubleSeconds(absl::Now() - start);
    std::sort(lat.begin(), lat.end());
    std::printf("%-10lld %10.3f %10.0f %10.0f\n", static_cast<long long>(bytes),
                static_cast<double>(bytes) * lat.size() / total / 1e9, lat[lat.size() / 2],
                lat[lat.size() * 99 / 100]);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ps::KeepFreedMemoryForReuse();
  absl::ParseCommandLine(argc, argv);
  return absl::GetFlag(FLAGS_serve) ? Serve() : Client();
}
