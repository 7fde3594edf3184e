// The worker's side of same-host transfer windows (docs/same_host.md): per shard, the
// offer this process verified at registration and the windows it opened there, per
// worker index. A call that may use windows asks PrepareWindows which shards' windows it
// uses and where each piece lies in them; gradients go in with WriteToPushWindows before
// the requests are sent, and pulled values come out with ReadPullWindows after the
// replies. A shard whose windows stop working is turned off (DisableSameHost) and its
// bytes go in-band until the worker registers again.
//
// Knows no gRPC: OpenWindow reaches the shard through the function the constructor gets.
//
// Thread safety: every method may be called concurrently; the per-shard state is under
// one mutex, which is not held while a window is opened or copied to or from. Two calls
// that lay out the same worker's windows at once would overwrite each other's bytes: the
// caller allows one windowed push and one windowed pull at a time.
#ifndef PS_WORKER_CLIENT_SAME_HOST_TRANSPORT_H_
#define PS_WORKER_CLIENT_SAME_HOST_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/same_host.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/request_plan.h"

namespace ps {

// Tensor bytes per windowed request: one request per shard carries up to this much (well
// under the server's --max_request_bytes).
inline constexpr int64_t kWindowRequestBytes = 16 << 20;

// What one call uses of a shard's windows; pid 0: none.
struct WindowUse {
  int64_t pid = 0;
  uint64_t push_address = 0;
  uint64_t pull_address = 0;
};

// A worker's windows on one shard, as OpenWindow returned them: `bytes` each at
// push_address and at pull_address in the server's memory.
struct OpenedWindows {
  uint64_t push_address = 0;
  uint64_t pull_address = 0;
  int64_t bytes = 0;
};

// Opens (or grows to at least `bytes`) `worker`'s windows on `shard`. An error names the
// shard; it turns that shard's windows off.
using OpenWindowFunction =
    std::function<absl::StatusOr<OpenedWindows>(int shard, int worker, int64_t bytes)>;

// Gives each piece of a chunk to a shard that `use` names (pid != 0) its byte offset in
// that shard's windows, in order from 0, then merges consecutive chunks to such a shard
// into requests of at most kWindowRequestBytes of tensor: windowed requests carry no
// tensor bytes, so the message limit that chunking exists for does not apply. Other
// chunks stay as they are. `use` has one entry per shard.
void LayOutInWindows(const std::vector<WindowUse>& use, std::vector<Chunk>* chunks);

class SameHostTransport {
 public:
  // `servers`: the shards' addresses (for logs), in shard order. With `enabled` false
  // no shard's windows are ever used. Bytes moved through windows are added to
  // `*window_bytes`, which must outlive this object.
  SameHostTransport(const std::vector<std::string>& servers, bool enabled,
                    OpenWindowFunction open_window, std::atomic<int64_t>* window_bytes);

  SameHostTransport(const SameHostTransport&) = delete;
  SameHostTransport& operator=(const SameHostTransport&) = delete;

  // Takes in what `shard` offered at registration (nullptr: nothing): usable when it is
  // on this host, in these namespaces, and its probe token can be read. A renewed offer
  // of the same server process keeps its windows. Logs once what the shard's tensor
  // bytes go through, and again when that changes.
  void AcceptOffer(int shard, const v1::SameHostOffer* offer);

  // For the shards whose windows this call by `worker` can use: opens or grows their
  // windows to what the chunks need, checks the probe, and lays the pieces out in them
  // (LayOutInWindows). Other shards' pieces stay in-band. Returns, per shard, what the
  // call uses. Uses none for worker < 0 (tools) or when disabled.
  std::vector<WindowUse> PrepareWindows(std::vector<Chunk>* chunks, int worker);

  // Writes every windowed piece's gradient into its shard's push window, one
  // process_vm_writev per shard. On a failure turns that shard's windows off and returns
  // false; the caller, having sent nothing yet, goes in-band.
  bool WriteToPushWindows(const std::vector<Chunk>& chunks, const std::vector<WindowUse>& use);

  // Reads reads[shard] out of each shard's pull window (one process_vm_readv per shard).
  // A window that cannot be read turns that shard's windows off and is returned as the
  // error.
  absl::Status ReadPullWindows(const std::vector<WindowUse>& use,
                               const std::vector<std::vector<RemoteCopy>>& reads);

  // After a windowed call failed with `st`: when the shard holds no window for this
  // worker (reason WINDOW_GONE), forgets the cached window so that the next call opens a
  // new one. Returns whether that was the failure.
  bool ForgetLostWindow(int shard, int worker, const absl::Status& st);

  // Forgets `worker`'s windows on every shard (it left; the shards free them).
  void ForgetWorker(int worker);

  // Stops using `shard`'s windows until its next offer, logging `why`.
  void DisableSameHost(int shard, const absl::Status& why);

  // Shards whose windows may be used now.
  int usable_shards() const;

 private:
  // A shard's same-host state: an offer this process verified, and its open windows.
  struct SameHostShard {
    bool usable = false;
    int64_t pid = 0;
    uint64_t probe_address = 0;
    std::string probe_token;
    // Open windows, per worker index (one client may act for several workers).
    std::map<int, OpenedWindows> windows;
    std::string note;  // what was last logged about this shard
  };

  // What a call by `worker` that needs `need` bytes of `shard`'s windows uses of them:
  // none when the shard's windows are off or cannot be opened that large.
  WindowUse UseWindows(int shard, int worker, int64_t need);

  const std::vector<std::string> servers_;
  const bool enabled_;
  const OpenWindowFunction open_window_;
  std::atomic<int64_t>* const window_bytes_;
  HostIdentity local_identity_;
  mutable absl::Mutex mu_;
  std::vector<SameHostShard> shards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_WORKER_CLIENT_SAME_HOST_TRANSPORT_H_
