#include "server/rpc/auth.h"

#include <sys/stat.h>

#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "glog/logging.h"

namespace ps {
namespace {

// The roles a method admits.
bool Admits(Method method, Role role) {
  switch (method) {
    case Method::kGetStatus:
    case Method::kClusterStatus:
    case Method::kWatch:
      return true;  // every role monitors
    case Method::kPull:
    case Method::kCreateTable:
    case Method::kListRows:
      return role == Role::kWorker || role == Role::kOperator;
    case Method::kPush:
    case Method::kPushPull:
    case Method::kRegisterWorker:
    case Method::kHeartbeat:
    case Method::kLeaveWorker:
    case Method::kOpenWindow:
    case Method::kAssign:
      return role == Role::kWorker;
    case Method::kCheckpoint:
      return role == Role::kOperator;
  }
  return false;
}

bool Monitoring(Method method) {
  return method == Method::kGetStatus || method == Method::kClusterStatus ||
         method == Method::kWatch;
}

// Compares without an early exit, so the time taken does not tell how much matched.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

// "ipv4:10.0.0.7:40312" -> "ipv4:10.0.0.7": one log line per host, not per connection.
std::string PeerHost(absl::string_view peer) {
  const size_t colon = peer.rfind(':');
  return std::string(colon == absl::string_view::npos ? peer : peer.substr(0, colon));
}

}  // namespace

const char* Authorizer::MethodName(Method method) {
  switch (method) {
    case Method::kCreateTable:
      return "CreateTable";
    case Method::kPull:
      return "Pull";
    case Method::kPush:
      return "Push";
    case Method::kPushPull:
      return "PushPull";
    case Method::kRegisterWorker:
      return "RegisterWorker";
    case Method::kHeartbeat:
      return "Heartbeat";
    case Method::kLeaveWorker:
      return "LeaveWorker";
    case Method::kGetStatus:
      return "GetStatus";
    case Method::kOpenWindow:
      return "OpenWindow";
    case Method::kListRows:
      return "ListRows";
    case Method::kAssign:
      return "Assign";
    case Method::kClusterStatus:
      return "Admin.ClusterStatus";
    case Method::kWatch:
      return "Admin.Watch";
    case Method::kCheckpoint:
      return "Admin.Checkpoint";
  }
  return "?";
}

const char* Authorizer::RoleName(Role role) {
  switch (role) {
    case Role::kMonitor:
      return "monitor";
    case Role::kWorker:
      return "worker";
    case Role::kOperator:
      return "operator";
  }
  return "?";
}

absl::StatusOr<std::vector<Authorizer::Entry>> Authorizer::Parse(const std::string& file) {
  std::ifstream in(file);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read the tokens file ", file));
  std::vector<Entry> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    const std::string where = absl::StrCat("tokens file ", file, " line ", number);
    if (fields.size() != 2 && fields.size() != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": want \"<role> <token> [name]\", got ", fields.size(), " fields"));
    }
    Entry e;
    if (fields[0] == "worker") {
      e.role = Role::kWorker;
    } else if (fields[0] == "operator") {
      e.role = Role::kOperator;
    } else if (fields[0] == "monitor") {
      e.role = Role::kMonitor;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": role '", fields[0], "' is not worker, operator or monitor"));
    }
    e.token = std::string(fields[1]);
    if (fields.size() == 3) {
      e.name = std::string(fields[2]);
    } else {
      int k = 1;
      for (const Entry& other : entries) k += other.role == e.role ? 1 : 0;
      e.name = absl::StrCat(fields[0], "#", k);
    }
    for (const Entry& other : entries) {
      if (other.token == e.token) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": a token listed twice"));
      }
      if (other.name == e.name && other.role != e.role) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": the name '", e.name, "' is already a ", RoleName(other.role), "'s"));
      }
    }
    entries.push_back(std::move(e));
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the tokens file ", file, " holds no token"));
  }
  return entries;
}

Authorizer::FileStamp Authorizer::Stamp(const std::string& file) {
  struct stat st;
  FileStamp s;
  if (stat(file.c_str(), &st) != 0) return s;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  s.size = st.st_size;
  s.inode = static_cast<int64_t>(st.st_ino);
  return s;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(const AuthOptions& options) {
  std::unique_ptr<Authorizer> a(new Authorizer(options));
  if (options.tokens_file.empty()) return a;
  absl::MutexLock lock(&a->mu_);
  a->stamp_ = Stamp(options.tokens_file);
  absl::StatusOr<std::vector<Entry>> entries = Parse(options.tokens_file);
  if (!entries.ok()) return entries.status();
  a->entries_ = *std::move(entries);
  a->next_check_ = absl::Now() + options.reload_interval;
  LOG(INFO) << "authorization on: " << a->entries_.size() << " tokens from " << options.tokens_file
            << (options.open_monitoring ? "; status and watch open to all" : "");
  return a;
}

void Authorizer::MaybeReload() {
  const absl::Time now = absl::Now();
  if (now < next_check_) return;
  next_check_ = now + options_.reload_interval;
  const FileStamp stamp = Stamp(options_.tokens_file);
  if (stamp == stamp_) return;
  stamp_ = stamp;
  absl::StatusOr<std::vector<Entry>> entries = Parse(options_.tokens_file);
  if (!entries.ok()) {
    LOG(ERROR) << "tokens file changed but is refused, the old tokens stay: "
               << entries.status().message();
    return;
  }
  entries_ = *std::move(entries);
  LOG(INFO) << "tokens file " << options_.tokens_file << " read again: " << entries_.size()
            << " tokens";
}

void Authorizer::LogRefusal(absl::string_view peer, const absl::Status& refusal) {
  const absl::Time now = absl::Now();
  if (last_logged_.size() > 4096) last_logged_.clear();  // bounded, whoever knocks
  auto [it, first] = last_logged_.emplace(PeerHost(peer), now);
  if (!first && now - it->second < absl::Minutes(1)) return;
  it->second = now;
  LOG(WARNING) << "refused a call from " << peer << ": " << refusal.message()
               << " (further refusals of this host are not logged for a minute)";
}

absl::Status Authorizer::Check(const grpc::ServerContextBase& context, Method method,
                               std::string* principal) {
  if (options_.tokens_file.empty()) return absl::OkStatus();
  absl::Status s = Check(context.client_metadata(), context.peer(), method, principal);
  // With mTLS the certificate's identity is part of the credential.
  if (s.ok() && principal != nullptr && context.auth_context() != nullptr) {
    for (const grpc::string_ref& id : context.auth_context()->GetPeerIdentity()) {
      absl::StrAppend(principal, "/", absl::string_view(id.data(), id.size()));
      break;
    }
  }
  return s;
}

absl::Status Authorizer::CheckWorker(int worker, const std::string& principal, Method method,
                                     bool* claimed) {
  if (claimed != nullptr) *claimed = false;
  if (worker < 0 || principal.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  auto it = owners_.find(worker);
  if (it == owners_.end()) {
    if (owners_.size() >= kMaxOwners) {
      return absl::ResourceExhaustedError(absl::StrCat(MethodName(method), " as worker ", worker,
                                                       ": this shard already knows ",
                                                       owners_.size(), " worker indices"));
    }
    owners_.emplace(worker, principal);
    if (claimed != nullptr) *claimed = true;
    return absl::OkStatus();
  }
  if (it->second == principal) return absl::OkStatus();
  absl::Status refusal = absl::PermissionDeniedError(absl::StrCat(
      MethodName(method), " as worker ", worker, ": it is registered by another credential ('",
      it->second, "'), not '", principal, "'"));
  LogRefusal(principal, refusal);
  return refusal;
}

void Authorizer::ReleaseWorker(int worker, const std::string& principal) {
  absl::MutexLock lock(&mu_);
  auto it = owners_.find(worker);
  if (it != owners_.end() && it->second == principal) owners_.erase(it);
}

absl::Status Authorizer::Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                               absl::string_view peer, Method method, std::string* principal) {
  if (options_.tokens_file.empty()) return absl::OkStatus();
  if (options_.open_monitoring && Monitoring(method)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  MaybeReload();
  absl::Status refusal;
  auto header = metadata.find("authorization");
  absl::string_view value;
  if (header != metadata.end())
    value = absl::string_view(header->second.data(), header->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ") && !absl::ConsumePrefix(&value, "bearer ")) {
    refusal = absl::UnauthenticatedError(absl::StrCat(
        MethodName(method), " needs a token (authorization: Bearer <token>); the call has none"));
  } else {
    const Entry* found = nullptr;
    for (const Entry& e : entries_) {
      if (ConstantTimeEquals(e.token, value)) found = &e;
    }
    if (found == nullptr) {
      refusal = absl::UnauthenticatedError(
          absl::StrCat(MethodName(method), ": the call's token is not one this shard knows"));
    } else if (!Admits(method, found->role)) {
      refusal = absl::PermissionDeniedError(
          absl::StrCat(MethodName(method), " is not for the ", RoleName(found->role), " role"));
    } else {
      if (principal != nullptr) *principal = found->name;
      return absl::OkStatus();
    }
  }
  LogRefusal(peer, refusal);
  return refusal;
}

}  // namespace ps
