// The Authorizer over call headers: roles per method, the codes and messages of each
// refusal, open monitoring, and a tokens file changed on disk.
#include "server/rpc/auth.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    file_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tokens-", getpid());
    Write("# the job's tokens\nworker w-secret\n\noperator  o-secret\nmonitor\tm-secret\n");
  }

  void Write(const std::string& contents) { std::ofstream(file_, std::ios::trunc) << contents; }

  std::unique_ptr<Authorizer> Make(bool open_monitoring = false) {
    AuthOptions o;
    o.tokens_file = file_;
    o.open_monitoring = open_monitoring;
    o.reload_interval = absl::ZeroDuration();
    absl::StatusOr<std::unique_ptr<Authorizer>> a = Authorizer::Create(o);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *std::move(a) : nullptr;
  }

  // Check() with `header` as the authorization header (none when empty).
  absl::Status As(Authorizer* a, const std::string& header, Method method) {
    Metadata md;
    if (!header.empty()) md.emplace("authorization", header);
    return a->Check(md, "ipv4:127.0.0.1:4242", method);
  }

  std::string file_;
};

TEST_F(AuthorizerTest, EachRoleCallsItsMethodsAndNoOthers) {
  std::unique_ptr<Authorizer> a = Make();
  const std::map<std::string, std::vector<Method>> admitted = {
      {"Bearer w-secret",
       {Method::kCreateTable, Method::kPull, Method::kPush, Method::kPushPull,
        Method::kRegisterWorker, Method::kHeartbeat, Method::kLeaveWorker, Method::kGetStatus,
        Method::kOpenWindow, Method::kListRows, Method::kAssign, Method::kClusterStatus,
        Method::kWatch}},
      {"Bearer o-secret",
       {Method::kCreateTable, Method::kPull, Method::kGetStatus, Method::kListRows,
        Method::kClusterStatus, Method::kWatch, Method::kCheckpoint}},
      {"Bearer m-secret", {Method::kGetStatus, Method::kClusterStatus, Method::kWatch}},
  };
  const std::vector<Method> all = {
      Method::kCreateTable,    Method::kPull,          Method::kPush,        Method::kPushPull,
      Method::kRegisterWorker, Method::kHeartbeat,     Method::kLeaveWorker, Method::kGetStatus,
      Method::kOpenWindow,     Method::kListRows,      Method::kAssign,      Method::kClusterStatus,
      Method::kWatch,          Method::kCheckpoint};
  for (const auto& [header, methods] : admitted) {
    for (Method m : all) {
      const bool ok = std::find(methods.begin(), methods.end(), m) != methods.end();
      absl::Status s = As(a.get(), header, m);
      EXPECT_EQ(s.code(), ok ? absl::StatusCode::kOk : absl::StatusCode::kPermissionDenied)
          << header << " " << Authorizer::MethodName(m) << ": " << s;
    }
  }
  absl::Status s = As(a.get(), "Bearer w-secret", Method::kCheckpoint);
  EXPECT_EQ(s.message(), "Admin.Checkpoint is not for the worker role");
}

TEST_F(AuthorizerTest, NoTokenOrAnUnknownOneIsUnauthenticated) {
  std::unique_ptr<Authorizer> a = Make();
  absl::Status s = As(a.get(), "", Method::kPush);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "Push needs a token (authorization: Bearer <token>); the call has none");
  for (const char* header : {"Bearer w-secre", "Bearer w-secret2", "Basic w-secret", "w-secret",
                             "Bearer ", "Bearer W-SECRET"}) {
    EXPECT_EQ(As(a.get(), header, Method::kPush).code(), absl::StatusCode::kUnauthenticated)
        << header;
  }
  EXPECT_EQ(As(a.get(), "Bearer x", Method::kPull).message(),
            "Pull: the call's token is not one this shard knows");
  // Monitoring needs a token too, unless it is open.
  EXPECT_EQ(As(a.get(), "", Method::kGetStatus).code(), absl::StatusCode::kUnauthenticated);
  std::unique_ptr<Authorizer> open = Make(/*open_monitoring=*/true);
  for (Method m : {Method::kGetStatus, Method::kClusterStatus, Method::kWatch}) {
    EXPECT_TRUE(As(open.get(), "", m).ok()) << Authorizer::MethodName(m);
  }
  EXPECT_EQ(As(open.get(), "", Method::kPull).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(AuthorizerTest, NoTokensFileAdmitsEveryone) {
  absl::StatusOr<std::unique_ptr<Authorizer>> a = Authorizer::Create(AuthOptions());
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(As(a->get(), "", Method::kCheckpoint).ok());
}

TEST_F(AuthorizerTest, ABadTokensFileIsRefusedByNameAndLine) {
  struct Case {
    std::string contents, message;
  };
  for (const Case& c : std::vector<Case>{
           {"worker a\nadmin b\n", "line 2: role 'admin' is not worker, operator or monitor"},
           {"worker a b c\n", "line 1: want \"<role> <token> [name]\", got 4 fields"},
           {"worker a w0\noperator b w0\n", "line 2: the name 'w0' is already a worker's"},
           {"worker a\noperator a\n", "line 2: a token listed twice"},
           {"# nothing\n\n", "holds no token"},
       }) {
    Write(c.contents);
    AuthOptions o;
    o.tokens_file = file_;
    absl::StatusOr<std::unique_ptr<Authorizer>> a = Authorizer::Create(o);
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << c.contents;
    EXPECT_NE(a.status().message().find(c.message), std::string::npos) << a.status();
    EXPECT_NE(a.status().message().find(file_), std::string::npos) << a.status();
  }
  AuthOptions o;
  o.tokens_file = file_ + ".missing";
  EXPECT_EQ(Authorizer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// A Secret updated in place: the new tokens count from the next check, the old ones stop;
// a version that does not parse leaves the last good one in force.
TEST_F(AuthorizerTest, ATokensFileChangedOnDiskIsReadAgain) {
  std::unique_ptr<Authorizer> a = Make();
  ASSERT_TRUE(As(a.get(), "Bearer w-secret", Method::kPush).ok());
  Write("worker w-rotated\noperator o-secret\n");
  EXPECT_TRUE(As(a.get(), "Bearer w-rotated", Method::kPush).ok());
  EXPECT_EQ(As(a.get(), "Bearer w-secret", Method::kPush).code(),
            absl::StatusCode::kUnauthenticated);
  Write("worker\n");  // broken: ignored
  EXPECT_TRUE(As(a.get(), "Bearer w-rotated", Method::kPush).ok());
}

// Worker identity: the first credential to register an index owns it; another one may
// neither register it nor act for it; tools (index < 0) and calls without tokens bind
// nothing.
TEST_F(AuthorizerTest, AWorkerIndexBelongsToTheCredentialThatRegisteredIt) {
  Write("worker token-a alice\nworker token-b\nworker token-c\noperator o-secret\n");
  std::unique_ptr<Authorizer> a = Make();
  auto principal = [&](const std::string& token) {
    Metadata md;
    const std::string header = "Bearer " + token;
    md.emplace("authorization", header);
    std::string p;
    EXPECT_TRUE(a->Check(md, "ipv4:127.0.0.1:1", Method::kRegisterWorker, &p).ok()) << token;
    return p;
  };
  const std::string alice = principal("token-a"), second = principal("token-b");
  EXPECT_EQ(alice, "alice");
  EXPECT_EQ(second, "worker#2");  // unnamed: the role's k-th token
  EXPECT_EQ(principal("token-c"), "worker#3");
  bool claimed = false;
  ASSERT_TRUE(a->CheckWorker(0, alice, Method::kRegisterWorker, &claimed).ok());
  EXPECT_TRUE(claimed);
  // A restarted worker registers again.
  EXPECT_TRUE(a->CheckWorker(0, alice, Method::kRegisterWorker, &claimed).ok());
  EXPECT_FALSE(claimed);
  absl::Status s = a->CheckWorker(0, second, Method::kRegisterWorker);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "RegisterWorker as worker 0: it is registered by another credential ('alice'), not "
            "'worker#2'");
  for (Method m : {Method::kPull, Method::kHeartbeat, Method::kPush, Method::kPushPull,
                   Method::kLeaveWorker, Method::kOpenWindow}) {
    EXPECT_TRUE(a->CheckWorker(0, alice, m).ok());
    s = a->CheckWorker(0, second, m);
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << Authorizer::MethodName(m);
    EXPECT_EQ(s.message(),
              absl::StrCat(Authorizer::MethodName(m),
                           " as worker 0: it is registered by another credential ('alice'), "
                           "not 'worker#2'"));
  }
  // An index no one holds yet (a shard restored from a checkpoint knows its workers, not
  // their credentials) goes to the first credential that acts for it.
  EXPECT_TRUE(a->CheckWorker(1, second, Method::kPush, &claimed).ok());
  EXPECT_TRUE(claimed);
  EXPECT_EQ(a->CheckWorker(1, alice, Method::kHeartbeat).code(),
            absl::StatusCode::kPermissionDenied);
  // A registration the shard refused gives its claim back.
  ASSERT_TRUE(a->CheckWorker(2, second, Method::kRegisterWorker, &claimed).ok());
  a->ReleaseWorker(2, second);
  EXPECT_TRUE(a->CheckWorker(2, alice, Method::kRegisterWorker).ok());
  EXPECT_TRUE(a->CheckWorker(-1, second, Method::kPull).ok());
  EXPECT_TRUE(a->CheckWorker(-1, alice, Method::kPull).ok());
  // A token rotated under a running job: old and new under one name, both keep alice's
  // workers; then the old one goes.
  Write("worker token-a alice\nworker token-a2 alice\nworker token-b\n");
  EXPECT_EQ(principal("token-a2"), "alice");
  EXPECT_EQ(principal("token-a"), "alice");
  EXPECT_TRUE(a->CheckWorker(0, principal("token-a2"), Method::kPush).ok());
  Write("worker token-a2 alice\nworker token-b\n");
  EXPECT_TRUE(a->CheckWorker(0, principal("token-a2"), Method::kPush).ok());
  // Without tokens nothing is bound.
  absl::StatusOr<std::unique_ptr<Authorizer>> open = Authorizer::Create(AuthOptions());
  ASSERT_TRUE(open.ok());
  EXPECT_TRUE((*open)->CheckWorker(0, "", Method::kRegisterWorker).ok());
}

}  // namespace
}  // namespace ps
