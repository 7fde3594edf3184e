#include "common/same_host.h"

#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(SameHostTest, LocalIdentityMatchesItself) {
  const HostIdentity me = LocalHostIdentity();
  EXPECT_EQ(me.pid, getpid());
  ASSERT_FALSE(me.boot_id.empty());
  EXPECT_TRUE(SameHost(me, me));
  HostIdentity other_boot = me;
  other_boot.boot_id = "00000000-0000-0000-0000-000000000000";
  EXPECT_FALSE(SameHost(me, other_boot));
  HostIdentity other_net = me;
  other_net.net_namespace += 1;
  EXPECT_FALSE(SameHost(me, other_net));
  HostIdentity unknown;
  EXPECT_FALSE(SameHost(unknown, unknown));
}

// More ranges than one process_vm_* call takes (IOV_MAX), of uneven sizes.
TEST(SameHostTest, ReadsAndWritesManyRangesOfThisProcess) {
  const int kRanges = IOV_MAX * 2 + 7;
  std::vector<char> src, dst;
  std::vector<RemoteCopy> copies;
  size_t total = 0;
  for (int i = 0; i < kRanges; ++i) total += 1 + i % 13;
  src.resize(total);
  dst.assign(total, 0);
  for (size_t i = 0; i < total; ++i) src[i] = static_cast<char>(i * 7 + 1);
  size_t at = 0;
  for (int i = 0; i < kRanges; ++i) {
    const size_t n = 1 + i % 13;
    copies.push_back({dst.data() + at, reinterpret_cast<uint64_t>(src.data() + at), n});
    at += n;
  }
  ASSERT_TRUE(ReadFromProcess(getpid(), copies).ok());
  EXPECT_EQ(dst, src);

  std::vector<char> back(total, 0);
  for (RemoteCopy& c : copies) {
    c.remote = reinterpret_cast<uint64_t>(back.data() + (c.local - dst.data()));
  }
  ASSERT_TRUE(WriteToProcess(getpid(), copies).ok());
  EXPECT_EQ(back, src);
}

TEST(SameHostTest, BadAddressAndMissingProcessAreNamed) {
  char buf[16];
  absl::Status s = ReadFromProcess(getpid(), {{buf, 8, sizeof(buf)}});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("reading from process"), std::string::npos) << s;
  EXPECT_NE(s.message().find("Bad address"), std::string::npos) << s;

  // A child that has exited and been reaped no longer exists.
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  s = WriteToProcess(child, {{buf, reinterpret_cast<uint64_t>(buf), sizeof(buf)}});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("No such process"), std::string::npos) << s;
}

// Another process: a forked child waits for its buffer to be written, then checks it.
TEST(SameHostTest, WritesIntoAnotherProcess) {
  static char shared[1 << 16];
  std::memset(shared, 0, sizeof(shared));
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  const pid_t child = fork();
  if (child == 0) {
    char c = 'r';
    if (write(ready[1], &c, 1) != 1) _exit(3);
    if (read(go[0], &c, 1) != 1) _exit(4);
    for (size_t i = 0; i < sizeof(shared); ++i) {
      if (shared[i] != static_cast<char>(i % 251)) _exit(1);
    }
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  std::vector<char> data(sizeof(shared));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % 251);
  ASSERT_TRUE(
      WriteToProcess(child, {{data.data(), reinterpret_cast<uint64_t>(shared), data.size()}})
          .ok());
  ASSERT_EQ(write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // This process's own copy was never touched.
  EXPECT_EQ(shared[1], 0);
}

}  // namespace
}  // namespace ps
