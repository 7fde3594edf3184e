// TLS on real daemons (docs/security.md), with the certificates
// deploy/k8s/make-tls-secret.sh makes (a CA, the shards' naming 127.0.0.1 among others,
// the workers' and psctl's) and another CA's, made here with openssl. 2 ps_server shards
// requiring client certificates and tokens, 2 ps_worker processes training through
// them, psctl; a plaintext client, one that does not trust the shards' CA and one
// without a certificate are refused at the handshake while the shards keep serving; a
// shard's certificate replaced on disk is served without a restart.
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

// Runs `script` with /bin/sh in `dir`; fails the test when it fails.
void Sh(const std::string& dir, const std::string& script) {
  static int runs = 0;
  absl::StatusOr<Process> p = Process::Start({"/bin/sh", "-ec", "cd '" + dir + "' && " + script},
                                             absl::StrCat(dir, "/sh-", ++runs, ".log"));
  ASSERT_TRUE(p.ok()) << p.status();
  absl::StatusOr<int> code = p->Wait(absl::Seconds(60));
  ASSERT_TRUE(code.ok()) << code.status();
  ASSERT_EQ(*code, 0) << script << "\n" << p->Log();
}

// A CA `name` (name.pem, name.key) and a certificate `cert` it signs (cert.pem,
// cert.key) for 127.0.0.1 and localhost.
void MakeCa(const std::string& dir, const std::string& name) {
  Sh(dir, absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                       "-nodes -days 2 -subj /CN=",
                       name, " -keyout ", name, ".key -out ", name, ".pem 2>/dev/null"));
}
void MakeCert(const std::string& dir, const std::string& ca, const std::string& cert) {
  Sh(dir,
     absl::StrCat(
         "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ", cert, ".ext && ",
         "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=", cert,
         " -keyout ", cert, ".key -out ", cert, ".csr 2>/dev/null && ", "openssl x509 -req -in ",
         cert, ".csr -CA ", ca, ".pem -CAkey ", ca, ".key -CAcreateserial -days 2 -extfile ", cert,
         ".ext -out ", cert, ".pem 2>/dev/null"));
}

class TlsMultiprocessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("tls");
    // The job's certificates as deploy/k8s/make-tls-secret.sh makes them for a cluster
    // (its --out form, for plain daemons): ca, shard, worker, operator; and another CA.
    ASSERT_NO_FATAL_FAILURE(
        Sh(dir_, "'" + RunfilePath("deploy/k8s/make-tls-secret.sh") +
                     "' --out job --days 2 >/dev/null && cp job/ca.crt ca.pem && for c in "
                     "shard worker operator; do cp job/$c.crt $c.pem; cp job/$c.key $c.key; done"));
    ASSERT_NO_FATAL_FAILURE(MakeCa(dir_, "other-ca"));
    ASSERT_NO_FATAL_FAILURE(MakeCert(dir_, "other-ca", "impostor"));
    std::ofstream(dir_ + "/tokens") << "worker tls-worker-token\noperator tls-operator-token\n";
    std::ofstream(dir_ + "/operator.token") << "tls-operator-token\n";
    std::ofstream(dir_ + "/worker.token") << "tls-worker-token\n";
  }

  std::vector<std::string> ServerFlags(const std::string& client_certs) const {
    return {"--tls_cert_file=" + dir_ + "/shard.pem",
            "--tls_key_file=" + dir_ + "/shard.key",
            "--tls_ca_file=" + dir_ + "/ca.pem",
            "--tls_client_certs=" + client_certs,
            "--tls_refresh_interval=1s",
            "--auth_tokens_file=" + dir_ + "/tokens",
            "--token_file=" + dir_ + "/operator.token"};
  }

  // A client of `servers` trusting `ca` ("": plaintext), presenting `cert` ("": none).
  std::unique_ptr<PsClient> Client(const ServerCluster& servers, const std::string& ca,
                                   const std::string& cert, const std::string& token) const {
    ClientOptions o;
    o.token = token;
    if (!ca.empty()) o.tls_ca_file = dir_ + "/" + ca + ".pem";
    if (!cert.empty()) {
      o.tls_cert_file = dir_ + "/" + cert + ".pem";
      o.tls_key_file = dir_ + "/" + cert + ".key";
    }
    o.rpc_timeout = absl::Seconds(10);
    o.connect_timeout = absl::Seconds(3);
    o.control_timeout = absl::Seconds(3);
    return NewGrpcPsClient(servers.addresses(), o);
  }

  std::string dir_;
};

TEST_F(TlsMultiprocessTest, WorkersTrainOverMutualTlsAndOthersAreRefusedAtTheHandshake) {
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir_, ServerFlags("require")).ok());
  EXPECT_THAT(servers.shard(0).Log(),
              HasSubstr(", TLS, client certificates required, tokens required"));

  // The demo's job for 2 epochs (sync, plain SGD lr 0.1): it reaches 0.85 over mTLS.
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<Process> p = Process::Start(
        {RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
         absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=sync", "--device=cpu",
         "--epochs=2", "--optimizer=sgd", "--learning_rate=0.1", "--log_every=200",
         "--same_host=false", "--token_file=" + dir_ + "/worker.token",
         "--tls_ca_file=" + dir_ + "/ca.pem", "--tls_cert_file=" + dir_ + "/worker.pem",
         "--tls_key_file=" + dir_ + "/worker.key"},
        absl::StrCat(dir_, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  const int steps = 2 * 469;  // 30,000 examples per worker in batches of 64
  for (Process& w : workers) {
    absl::StatusOr<int> code = w.Wait(absl::Minutes(8));
    ASSERT_TRUE(code.ok()) << code.status();
    ASSERT_EQ(*code, 0) << w.Log();
    EXPECT_EQ(DoneField(w.Log(), "steps"), steps);
    EXPECT_LT(DoneField(w.Log(), "last_loss"), 0.7 * DoneField(w.Log(), "first_loss")) << w.Log();
  }
  EXPECT_GE(DoneField(workers[0].Log(), "test_accuracy"), 0.85) << workers[0].Log();

  // Refused at the handshake, before any token is looked at: UNAVAILABLE, nothing read.
  for (const auto& [ca, cert, what] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"", "", "plaintext"},
           {"other-ca", "worker", "a client that does not trust the shards' CA"},
           {"ca", "", "a client without a certificate"},
           {"ca", "impostor", "a certificate from another CA"}}) {
    std::unique_ptr<PsClient> c = Client(servers, ca, cert, "tls-operator-token");
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = c->GetStatus();
    EXPECT_EQ(status.status().code(), absl::StatusCode::kUnavailable)
        << what << ": " << status.status();
  }
  // The shards kept serving: the operator with its certificate and token reads the model.
  std::unique_ptr<PsClient> op = Client(servers, "ca", "operator", "tls-operator-token");
  std::vector<float> w(10);
  absl::StatusOr<int64_t> v = op->Pull({{"fc2.b", 10, w.data()}}, 0, -1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, steps);
  // TLS without the token is still refused by the token check.
  EXPECT_EQ(Client(servers, "ca", "operator", "")->GetStatus().status().code(),
            absl::StatusCode::kUnauthenticated);

  // psctl over mTLS with the operator's token; the shard it asks reaches its peer over
  // mTLS with its own certificate and token.
  absl::StatusOr<Process> psctl = Process::Start(
      {"/usr/bin/env", "PS_TOKEN_FILE=" + dir_ + "/operator.token", RunfilePath("psctl/psctl"),
       "--servers=" + servers.servers_flag(), "--tls_ca_file=" + dir_ + "/ca.pem",
       "--tls_cert_file=" + dir_ + "/operator.pem", "--tls_key_file=" + dir_ + "/operator.key",
       "status"},
      dir_ + "/psctl.log");
  ASSERT_TRUE(psctl.ok()) << psctl.status();
  absl::StatusOr<int> code = psctl->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 0) << psctl->Log();
  EXPECT_EQ(psctl->Log().find("cannot reach"), std::string::npos) << psctl->Log();
}

// A rotated certificate (the files replaced, as a Secret is): new connections get the
// new one within the refresh interval, with no restart.
TEST_F(TlsMultiprocessTest, ACertificateReplacedOnDiskIsServedWithoutARestart) {
  // The shard's files, which this test replaces.
  Sh(dir_, "cp shard.pem live.pem && cp shard.key live.key");
  ServerCluster servers;
  ASSERT_TRUE(
      servers
          .Start(1, dir_,
                 {"--tls_cert_file=" + dir_ + "/live.pem", "--tls_key_file=" + dir_ + "/live.key",
                  "--tls_ca_file=" + dir_ + "/ca.pem", "--tls_refresh_interval=1s"})
          .ok());
  EXPECT_TRUE(Client(servers, "ca", "", "")->GetStatus().ok());
  EXPECT_EQ(Client(servers, "other-ca", "", "")->GetStatus().status().code(),
            absl::StatusCode::kUnavailable);
  // Rotate to a certificate from the other CA: written aside, then renamed into place.
  Sh(dir_,
     "cp impostor.pem next.pem && cp impostor.key next.key && mv next.key live.key && "
     "mv next.pem live.pem");
  bool served = false;
  for (int i = 0; i < 60 && !served; ++i) {  // the files are looked at once a second
    served = Client(servers, "other-ca", "", "")->GetStatus().ok();
    if (!served) absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_TRUE(served) << servers.shard(0).Log();
  EXPECT_EQ(Client(servers, "ca", "", "")->GetStatus().status().code(),
            absl::StatusCode::kUnavailable);
  // A certificate from the job's CA that does not name the host dialled (the workers'
  // client certificate, served as the shard's) is refused by the client.
  Sh(dir_,
     "cp worker.pem next.pem && cp worker.key next.key && mv next.key live.key && "
     "mv next.pem live.pem");
  bool refused = false;
  for (int i = 0; i < 60 && !refused; ++i) {
    refused = !Client(servers, "other-ca", "", "")->GetStatus().ok();
    if (!refused) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_TRUE(refused);  // the impostor's certificate is no longer served
  EXPECT_EQ(Client(servers, "ca", "", "")->GetStatus().status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace testing
}  // namespace ps
