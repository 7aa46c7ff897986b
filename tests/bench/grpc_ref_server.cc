// grpc_ref_server.cc: the reference server of `make bench`.
//
// Serves /scale.common.v1.PingService/Ping with the gRPC C++ async API
// (Debian libgrpc++ 1.51) and does the work scale-server's handler does:
// echo message and payload, stamp server_time, take the request id from the
// x-request-id metadata or generate a UUIDv4 from getrandom(), and return it
// both in the response and as x-request-id initial metadata. grpc_bench.sh
// compares scale-server against it; it is not part of SCALE.
//
// Environment:
//   SCALE_GRPC_ADDR     listen address (default 127.0.0.1:50061), insecure
//   SCALE_GRPC_THREADS  worker threads, one completion queue each
//                       (default max(4, 2 * online CPUs))
// Prints "listening on ADDR" to stderr when ready; SIGTERM/SIGINT stop it
// cleanly (exit 0). A bad environment value exits 2, a failed bind exits 1.

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "scale/common/v1/ping.grpc.pb.h"

namespace {

using scale::common::v1::PingRequest;
using scale::common::v1::PingResponse;
using scale::common::v1::PingService;

constexpr char kDefaultAddr[] = "127.0.0.1:50061";
constexpr char kVersion[] = "0.1.0";
// Same length as "scale-server", so both responses have the same size.
constexpr char kServerName[] = "grpc-cpp-ref";
constexpr size_t kMaxRequestIdLen = 128;
constexpr long kMaxThreads = 1024;

// A client's x-request-id is kept when it is 1..128 bytes of [A-Za-z0-9._:-];
// anything else is replaced, so a log line can never be forged through it.
bool RequestIdValid(grpc::string_ref id) {
  if (id.empty() || id.size() > kMaxRequestIdLen) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// RFC 9562 version 4 UUID, lowercase hex. getrandom() on 16 bytes does not
// fail short once the pool is initialised; if it still fails, the id is the
// nil UUID rather than an abort, since the id only labels logs.
std::string NewUuidV4() {
  unsigned char b[16] = {0};
  if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    return "00000000-0000-0000-0000-000000000000";
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0x0f]);
  }
  return out;
}

void HandlePing(grpc::ServerContext* ctx, const PingRequest& req, PingResponse* resp) {
  std::string id;
  auto found = ctx->client_metadata().find("x-request-id");
  if (found != ctx->client_metadata().end() && RequestIdValid(found->second)) {
    id.assign(found->second.data(), found->second.size());
  } else {
    id = NewUuidV4();
  }
  ctx->AddInitialMetadata("x-request-id", id);

  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  resp->set_message(req.message());
  resp->set_payload(req.payload());
  resp->mutable_server_time()->set_seconds(now.tv_sec);
  resp->mutable_server_time()->set_nanos(static_cast<int32_t>(now.tv_nsec));
  resp->set_request_id(std::move(id));
  resp->set_version(kVersion);
  resp->set_server(kServerName);
}

// One call's state. Each completion queue always has exactly one CallData
// waiting for a call; when it gets one it arms a successor on the same queue,
// runs the handler inline and finishes asynchronously. The CallData is its
// own completion-queue tag and deletes itself after Finish completes.
class CallData {
 public:
  CallData(PingService::AsyncService* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), responder_(&ctx_) {
    service_->RequestPing(&ctx_, &req_, &responder_, cq_, cq_, this);
  }

  // Called by the queue's worker thread with the event's ok flag.
  void Proceed(bool ok) {
    if (state_ == State::kWaiting && ok) {
      new CallData(service_, cq_);
      HandlePing(&ctx_, req_, &resp_);
      state_ = State::kFinishing;
      responder_.Finish(resp_, grpc::Status::OK, this);
      return;
    }
    // Finish completed, or the server is shutting down (!ok while waiting).
    delete this;
  }

 private:
  enum class State { kWaiting, kFinishing };

  PingService::AsyncService* service_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext ctx_;
  PingRequest req_;
  PingResponse resp_;
  grpc::ServerAsyncResponseWriter<PingResponse> responder_;
  State state_ = State::kWaiting;
};

void Worker(grpc::ServerCompletionQueue* cq) {
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) static_cast<CallData*>(tag)->Proceed(ok);
}

// Returns the thread count, or -1 when SCALE_GRPC_THREADS is set but invalid.
long ThreadsFromEnv() {
  const char* s = getenv("SCALE_GRPC_THREADS");
  if (s == nullptr || *s == '\0') {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    return cpus * 2 > 4 ? cpus * 2 : 4;
  }
  char* end = nullptr;
  errno = 0;
  long n = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || n < 1 || n > kMaxThreads) return -1;
  return n;
}

}  // namespace

int main() {
  // Block the stop signals before gRPC starts its own threads, so that only
  // sigwait() below ever sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const char* addr_env = getenv("SCALE_GRPC_ADDR");
  std::string addr = (addr_env != nullptr && *addr_env != '\0') ? addr_env : kDefaultAddr;
  long threads = ThreadsFromEnv();
  if (threads < 0) {
    fprintf(stderr, "SCALE_GRPC_THREADS: want an integer in 1..%ld\n", kMaxThreads);
    return 2;
  }

  PingService::AsyncService service;
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (long i = 0; i < threads; i++) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    fprintf(stderr, "SCALE_GRPC_ADDR: cannot listen on %s\n", addr.c_str());
    return 1;
  }

  std::vector<std::thread> workers;
  for (auto& cq : cqs) {
    new CallData(&service, cq.get());
    workers.emplace_back(Worker, cq.get());
  }
  fprintf(stderr, "listening on %s (%ld threads)\n", addr.c_str(), threads);

  int sig = 0;
  sigwait(&stop_signals, &sig);

  // Calls still running after the grace period are cancelled; then the
  // queues drain (every pending tag comes back once) and the workers return.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& w : workers) w.join();
  return 0;
}
