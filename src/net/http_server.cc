// HTTP/1.1 server on Boost.Beast: event loops for the many small requests, worker threads for
// the ones that stream or block. (Design notes: src/net/README.md, "HTTP server threading".)
//
//  - `io_threads` event-loop threads (one per core by default), each running its own
//    io_context, like nginx's worker processes. Accepted connections are spread round-robin and
//    stay on their loop. A loop reads request heads, small bodies with a Content-Length
//    (≤ kMaxBufferedBody) and writes in-memory responses asynchronously.
//  - A request whose handler claims it (HttpHandler::RunsInline — /health, /metrics) and whose
//    body is in memory is answered on the loop thread: no thread hop, no context switch.
//  - Every other request is handed, together with its connection, to a worker thread of an
//    elastic pool. There the handler reads a streaming body (a 5 GiB upload, chunked or
//    aws-chunked) and writes a streaming response with blocking I/O through a plain Read()
//    interface, exactly as in a thread-per-connection server; then the connection goes back to
//    its loop for the next request. While a worker owns a connection no asynchronous operation
//    is pending on it, so the loop and the worker never touch it at the same time.
//  - One watchdog thread enforces every deadline, on both paths, by shutting down the socket
//    whose deadline has passed: the pending read or write fails (slow-loris clients, clients
//    that stop reading, uploads that stall). A deadline is an atomic store, not a timer per
//    operation on the loop.
#include "net/http_server.h"

#include <pthread.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/clock.h"  // FormatHttpDate
#include "core/log.h"
#include "core/strings.h"
#include "ops/metrics.h"

namespace tarn::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kWorkerStackSize = 512 * 1024;
constexpr size_t kIoChunk = 256 * 1024;   // streaming response pieces
constexpr size_t kReadChunk = 16 * 1024;  // socket reads on the loop
// Bodies up to this size with a Content-Length are read by the loop before the handler runs,
// so a slow client never holds a worker thread for them. Larger, chunked and 100-continue
// bodies stream through a worker.
constexpr uint64_t kMaxBufferedBody = 256 * 1024;
// An unread request body up to this size is read and dropped to keep the connection.
constexpr size_t kMaxDrain = 1024 * 1024;
constexpr auto kWorkerIdle = std::chrono::seconds(30);  // an idle worker thread exits after this

// Deadlines are checked by the watchdog every 100 ms: the coarse clock (a few ms resolution, no
// TSC read) is precise enough and cheap enough to read several times per request.
int64_t NowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Shared between a connection and the watchdog. `fd` is guarded by the server's mu_: it is
// reset under that lock before the socket closes, so the watchdog never shuts down a reused fd.
struct ConnState {
  int fd = -1;
  std::atomic<int64_t> deadline{0};  // monotonic ns; 0 = none
  std::atomic<bool> idle{false};     // waiting for the next request on a kept-alive connection
  std::atomic<bool> killed{false};

  void SetDeadline(uint32_t ms) { deadline = NowNanos() + int64_t(ms) * 1'000'000; }
  void ClearDeadline() { deadline = 0; }
  // Caller holds the server's mu_.
  void Kill() {
    if (!killed.exchange(true) && fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
};

// A cached Date header value, refreshed once per second.
const std::string& DateHeader() {
  thread_local int64_t cached_sec = -1;
  thread_local std::string cached;
  int64_t now = std::time(nullptr);
  if (now != cached_sec) {
    cached_sec = now;
    cached = FormatHttpDate(now);
  }
  return cached;
}

// ---------------------------------------------------------------------------------------------
// Worker threads: created on demand (a blocking request must never wait for another one to
// finish — an upload can last minutes), kept for kWorkerIdle when idle so that a busy S3
// workload does not pay a thread creation per request. At most one per connection.

class WorkerPool {
 public:
  explicit WorkerPool(ops::GaugeMetric* threads_gauge) : threads_gauge_(threads_gauge) {}
  ~WorkerPool() { Shutdown(); }

  void Submit(std::function<void()> task) {
    std::unique_lock<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
    if (idle_ >= tasks_.size()) {
      cv_.notify_one();
      return;
    }
    ++threads_;
    threads_gauge_->Set(double(threads_));
    lock.unlock();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kWorkerStackSize);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, &WorkerPool::ThreadMain, this);
    pthread_attr_destroy(&attr);
    if (rc == 0) return;
    TLOG_ERROR("http", "cannot start a worker thread (error {}); running the request inline", rc);
    lock.lock();
    --threads_;
    threads_gauge_->Set(double(threads_));
    if (threads_ > 0) return;  // a running worker will take it
    // No worker at all: run what is queued here rather than lose it.
    while (!tasks_.empty()) {
      auto t = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      t();
      t = nullptr;
      lock.lock();
    }
  }

  // Runs what is queued, then waits for every worker thread to exit. Idempotent.
  void Shutdown() {
    std::unique_lock<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
    exit_cv_.wait(lock, [this] { return threads_ == 0; });
  }

 private:
  static void* ThreadMain(void* p) {
    pthread_setname_np(pthread_self(), "http-worker");
    static_cast<WorkerPool*>(p)->Run();
    return nullptr;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      bool timed_out = false;
      while (tasks_.empty() && !stop_ && !timed_out) {
        ++idle_;
        timed_out = cv_.wait_for(lock, kWorkerIdle) == std::cv_status::timeout;
        --idle_;
      }
      if (tasks_.empty()) break;  // stopping, or idle for too long
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      task = nullptr;  // drop what it captured (the connection) outside the lock
      lock.lock();
    }
    --threads_;
    threads_gauge_->Set(double(threads_));
    exit_cv_.notify_all();
    // `this` may be destroyed as soon as the lock is released.
  }

  ops::GaugeMetric* threads_gauge_;
  std::mutex mu_;
  std::condition_variable cv_;               // a task arrived, or stop_
  std::condition_variable exit_cv_;          // a thread exited
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  size_t threads_ = 0;                       // guarded by mu_
  size_t idle_ = 0;                          // guarded by mu_: threads waiting in Run
  bool stop_ = false;                        // guarded by mu_
};

// ---------------------------------------------------------------------------------------------
// Request bodies.

// A body the event loop has read already (or an empty one).
class BufferedBodyReader final : public BodyReader {
 public:
  BufferedBodyReader(std::string_view data, std::optional<uint64_t> content_length)
      : data_(data), content_length_(content_length) {}
  Result<size_t> Read(char* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - pos_);
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  std::optional<uint64_t> content_length() const override { return content_length_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  std::optional<uint64_t> content_length_;
};

// A body streamed from the socket with blocking reads, on a worker thread.
//
// A body with a Content-Length is read straight into the caller's buffer (what the parser's
// buffer still holds first, then the socket): one copy less per byte than passing it through
// Beast's parser, which copies every body byte out of its flat_buffer — for a 1 MiB PUT that
// copy was as much CPU as the kernel's own. Chunked bodies still go through the parser.
template <typename Stream>
class StreamBodyReader final : public BodyReader {
 public:
  StreamBodyReader(Stream& stream, beast::flat_buffer& buffer,
                   http::request_parser<http::buffer_body>& parser, ConnState& state,
                   const HttpLimits& limits, bool expect_continue)
      : stream_(stream),
        buffer_(buffer),
        parser_(parser),
        state_(state),
        limits_(limits),
        expect_continue_(expect_continue) {
    auto len = parser_.content_length();
    if (!parser_.chunked() && len) remaining_ = *len;
  }

  Result<size_t> Read(char* buf, size_t n) override {
    if (!error_.ok()) return error_;
    if (done() || n == 0) return size_t{0};
    if (expect_continue_) {
      // RFC 7231 §5.1.1: tell the client to send the body only once a handler asks for it.
      expect_continue_ = false;
      static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
      beast::error_code ec;
      state_.SetDeadline(limits_.idle_timeout_ms);
      asio::write(stream_, asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
      if (ec) return Fail(ErrorCode::kIncompleteBody, "client went away: " + ec.message());
    }
    if (remaining_) return ReadRaw(buf, n);
    for (;;) {
      parser_.get().body().data = buf;
      parser_.get().body().size = n;
      state_.SetDeadline(limits_.idle_timeout_ms);
      beast::error_code ec;
      http::read(stream_, buffer_, parser_, ec);
      if (ec == http::error::need_buffer) ec = {};
      size_t got = n - parser_.get().body().size;
      if (ec) return ReadFailed();
      if (got > 0 || parser_.is_done()) return got;
    }
  }

  std::optional<uint64_t> content_length() const override {
    auto len = parser_.content_length();
    if (len) return *len;
    return std::nullopt;
  }

  bool failed() const { return !error_.ok(); }
  // The whole body has been read (the next request on the connection can be parsed).
  bool done() const { return remaining_ ? *remaining_ == 0 : parser_.is_done(); }
  // Body bytes still unread, when the framing says (Content-Length).
  std::optional<uint64_t> remaining() const { return remaining_; }

 private:
  // Content-Length framing: the parser has consumed the head only (it is not eager), so
  // buffer_ holds the first body bytes, possibly followed by a pipelined request.
  Result<size_t> ReadRaw(char* buf, size_t n) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, *remaining_));
    if (buffer_.size() > 0) {
      size_t k = std::min(want, buffer_.size());
      std::memcpy(buf, buffer_.data().data(), k);
      buffer_.consume(k);
      *remaining_ -= k;
      return k;
    }
    state_.SetDeadline(limits_.idle_timeout_ms);
    beast::error_code ec;
    size_t got = stream_.read_some(asio::buffer(buf, want), ec);
    if (ec || got == 0) return ReadFailed();
    *remaining_ -= got;
    return got;
  }

  Status ReadFailed() {
    if (state_.killed) {
      return Fail(ErrorCode::kRequestTimeout, "request body not received within the idle timeout");
    }
    return Fail(ErrorCode::kIncompleteBody, "request body ended early or is malformed");
  }

  Status Fail(ErrorCode code, std::string msg) {
    error_ = Status(code, std::move(msg));
    return error_;
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  http::request_parser<http::buffer_body>& parser_;
  ConnState& state_;
  const HttpLimits& limits_;
  bool expect_continue_;
  std::optional<uint64_t> remaining_;  // body bytes still to read (Content-Length framing)
  Status error_;
};

// ---------------------------------------------------------------------------------------------
// Response heads, written by hand: one string per response, no allocation per header field.

enum class Framing { kNone, kLength, kChunked, kUntilClose };

void AppendHeaderValue(std::string_view v, std::string* out) {
  // A CR or LF in a value would split the response (header injection): never pass one on.
  for (char c : v) out->push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// Appends the status line and header block of `res` to `out`; decides the body framing and
// whether the connection stays open (*keep_alive may turn false). `head_only`: no body bytes
// follow (HEAD, 204, 304).
Framing AppendResponseHead(const HttpResponse& res, unsigned version, bool head_only,
                           bool* keep_alive, std::string* out) {
  Framing framing = Framing::kLength;
  bool has_length = res.headers.Has("Content-Length");
  uint64_t length = 0;
  if (!res.body_source) {
    length = res.body.size();
  } else if (res.content_length) {
    length = *res.content_length;
  } else if (!has_length) {
    // Unknown length: chunked for HTTP/1.1; an HTTP/1.0 client reads to the end of the
    // connection (RFC 7230 §3.3.3).
    if (version >= 11) {
      framing = Framing::kChunked;
    } else {
      framing = Framing::kUntilClose;
      *keep_alive = false;
    }
  }
  out->append(version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ");
  out->append(std::to_string(res.status));
  out->push_back(' ');
  beast::string_view reason = http::obsolete_reason(static_cast<http::status>(res.status));
  out->append(reason.data(), reason.size());
  out->append("\r\nServer: Tarn\r\nDate: ");
  out->append(DateHeader());
  out->append("\r\n");
  for (const auto& [k, v] : res.headers.fields()) {
    if (EqualsIgnoreCase(k, "Connection")) continue;  // ours to decide
    AppendHeaderValue(k, out);
    out->append(": ");
    AppendHeaderValue(v, out);
    out->append("\r\n");
  }
  if (framing == Framing::kChunked) {
    out->append("Transfer-Encoding: chunked\r\n");
  } else if (framing == Framing::kLength && !has_length) {
    out->append("Content-Length: ");
    out->append(std::to_string(length));
    out->append("\r\n");
  }
  if (version >= 11) {
    if (!*keep_alive) out->append("Connection: close\r\n");
  } else if (*keep_alive) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
  return head_only ? Framing::kNone : framing;
}

std::string SimpleResponse(int status, std::string_view body) {
  HttpResponse res;
  res.status = status;
  res.headers.Set("Content-Type", "text/plain");
  res.body = std::string(body);
  bool keep_alive = false;
  std::string out;
  AppendResponseHead(res, 11, false, &keep_alive, &out);
  out.append(body);
  return out;
}

// ---------------------------------------------------------------------------------------------

class HttpServerImpl;

// One client connection. Lives on its event loop; handed to a worker for one request at a time.
// Owned by shared_ptrs in the completion handlers and worker tasks that refer to it.
template <typename Stream>
class Connection final : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  // TLS streams are only ever given one buffer per write: Beast 1.74's flat_stream (inside
  // ssl_stream) writes zero bytes — forever — when a buffer sequence starts with an empty
  // buffer, which asio::write produces once the first of two buffers is consumed exactly.
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  Connection(HttpServerImpl* server, Stream stream, std::shared_ptr<ConnState> state,
             std::string remote_ip, uint16_t remote_port);
  // On the connection's loop.
  void Start();

 private:
  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }
  const HttpLimits& limits() const;
  bool stopping() const;
  std::optional<uint64_t> ContentLength() const {
    auto len = parser_->content_length();
    return len ? std::optional<uint64_t>(*len) : std::nullopt;
  }

  void ReadNext();
  void ReadHead();
  void ParseHead();
  void OnHead();
  void ReadBufferedBody(bool run_inline);
  void Dispatch(bool run_inline);
  void ServeOnWorker(bool body_buffered);
  void WriteOnWorker();
  bool WriteResponseSync();
  void WriteResponseAsync();
  void AfterResponse(bool ok);
  void FailHead(int status, std::string_view body);
  void Close();
  void CloseSocket();
  void CountTimeout();

  HttpServerImpl* server_;
  Stream stream_;
  std::shared_ptr<ConnState> state_;
  std::string remote_ip_;
  uint16_t remote_port_;
  // Unbounded, but the parser's header limit and the body readers keep it to about
  // max_header_bytes + kReadChunk.
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::buffer_body>> parser_;
  // The request in flight.
  HttpRequest req_;
  HttpResponse res_;
  std::string body_;  // a buffered request body
  std::string out_;   // the serialized response head (and chunk framing)
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool expect_continue_ = false;
  bool close_after_ = false;
  bool handshake_done_ = false;
  bool closed_ = false;
};

class HttpServerImpl final : public HttpServer {
 public:
  HttpServerImpl(HttpServerOptions options, HttpHandler* handler)
      : options_(std::move(options)), handler_(handler) {}

  ~HttpServerImpl() override { Stop(0); }

  Status Init() {
    size_t n = options_.io_threads > 0 ? size_t(options_.io_threads)
                                       : std::max(1u, std::thread::hardware_concurrency());
    n = std::min<size_t>(n, 64);
    for (size_t i = 0; i < n; ++i) {
      // Concurrency hint 1: each io_context is run by exactly one thread.
      ios_.push_back(std::make_unique<asio::io_context>(1));
    }
    acceptor_.emplace(*ios_[0]);
    beast::error_code ec;
    auto addr = asio::ip::make_address(options_.listen.host, ec);
    if (ec) {
      return Error(ErrorCode::kInvalidArgument,
                   "listen address '" + options_.listen.host + "': " + ec.message());
    }
    tcp::endpoint ep(addr, options_.listen.port);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(1024, ec);
    if (ec) {
      return Error(ErrorCode::kUnavailable, options_.name + ": cannot listen on " +
                                                options_.listen.ToString() + ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint().port();
    acceptor_fd_ = acceptor_->native_handle();
    if (!options_.tls.cert_file.empty()) {
      ssl_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      ssl_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1);
      ssl_->use_certificate_chain_file(options_.tls.cert_file, ec);
      if (!ec) ssl_->use_private_key_file(options_.tls.key_file, asio::ssl::context::pem, ec);
      if (!ec && !options_.tls.client_ca_file.empty()) {
        ssl_->load_verify_file(options_.tls.client_ca_file, ec);
        ssl_->set_verify_mode(asio::ssl::verify_peer);
      }
      if (ec)
        return Error(ErrorCode::kInvalidArgument, options_.name + ": TLS setup: " + ec.message());
    }
    ops::Labels listener{{"listener", options_.name}};
    connections_gauge_ =
        &ops::Metrics().Gauge("tarn_http_open_connections", "Open HTTP connections", listener);
    rejected_ =
        &ops::Metrics().Counter("tarn_http_connections_rejected_total",
                                "Connections refused at the max_connections limit", listener);
    timeouts_ =
        &ops::Metrics().Counter("tarn_http_connection_timeouts_total",
                                "Connections closed by the header/idle deadlines", listener);
    const char* kRequestsHelp =
        "HTTP requests by where the handler ran (event loop or worker thread)";
    loop_requests_ = &ops::Metrics().Counter("tarn_http_requests_total", kRequestsHelp,
                                             {{"listener", options_.name}, {"path", "event_loop"}});
    worker_requests_ = &ops::Metrics().Counter("tarn_http_requests_total", kRequestsHelp,
                                               {{"listener", options_.name}, {"path", "worker"}});
    workers_.emplace(&ops::Metrics().Gauge(
        "tarn_http_worker_threads", "Worker threads serving blocking HTTP requests", listener));

    for (auto& io : ios_) guards_.emplace_back(io->get_executor());
    DoAccept();
    for (size_t i = 0; i < ios_.size(); ++i) {
      io_threads_.emplace_back([this, i] {
        std::string name = options_.name.substr(0, 8) + "-io" + std::to_string(i);
        pthread_setname_np(pthread_self(), name.c_str());
        ios_[i]->run();
      });
    }
    watchdog_thread_ = std::thread([this] { WatchdogLoop(); });
    return Status::OK();
  }

  uint16_t port() const override { return port_; }
  std::string address() const override {
    ListenAddress a = options_.listen;
    a.port = port_;
    return a.ToString();
  }
  size_t connections() const override { return open_.load(); }

  void Stop(int grace_ms) override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    // Wakes the pending accept, which sees stopping_ and closes the acceptor on its loop.
    if (acceptor_fd_ >= 0) ::shutdown(acceptor_fd_, SHUT_RDWR);
    // Idle keep-alive connections go now; busy ones finish their request first.
    int64_t until = NowNanos() + int64_t(grace_ms) * 1'000'000;
    for (;;) {
      std::unique_lock<std::mutex> lock(mu_);
      for (auto& c : conns_) {
        if (c->idle) c->Kill();
      }
      if (conns_.empty()) break;
      if (NowNanos() >= until) {
        for (auto& c : conns_) c->Kill();
      }
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    // Every connection has closed its socket; what is left on the loops are completions that
    // only drop their references.
    guards_.clear();
    for (auto& io : ios_) io->stop();
    for (auto& t : io_threads_) {
      if (t.joinable()) t.join();
    }
    if (workers_) workers_->Shutdown();
    {
      std::lock_guard<std::mutex> lock(mu_);
      watchdog_stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_thread_.joinable()) watchdog_thread_.join();
  }

  // --- used by Connection ---
  const HttpServerOptions& options() const { return options_; }
  HttpHandler* handler() const { return handler_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  WorkerPool& workers() { return *workers_; }
  ops::CounterMetric& loop_requests() { return *loop_requests_; }
  ops::CounterMetric& worker_requests() { return *worker_requests_; }
  ops::CounterMetric& timeouts() { return *timeouts_; }

  // Forgets a connection before its socket closes (see ConnState::fd).
  void Unregister(const std::shared_ptr<ConnState>& state) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.remove(state);
      state->fd = -1;
    }
    --open_;
    connections_gauge_->Set(static_cast<double>(open_.load()));
    cv_.notify_all();
  }

 private:
  void DoAccept() {
    asio::io_context& io = *ios_[next_io_++ % ios_.size()];
    // The new socket belongs to the loop it is assigned to, not to the acceptor's.
    acceptor_->async_accept(asio::any_io_executor(io.get_executor()),
                            [this, &io](beast::error_code ec, tcp::socket socket) {
                              OnAccept(ec, std::move(socket), io);
                            });
  }

  void OnAccept(beast::error_code ec, tcp::socket socket, asio::io_context& io) {
    if (stopping_) {
      acceptor_->close(ec);
      return;
    }
    if (ec) {
      if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
        // Out of file descriptors: back off instead of spinning on the ready listener.
        accept_timer_.emplace(*ios_[0], std::chrono::milliseconds(10));
        accept_timer_->async_wait([this](beast::error_code) {
          if (!stopping_) DoAccept();
        });
        return;
      }
      DoAccept();
      return;
    }
    if (open_.load() >= options_.limits.max_connections) {
      rejected_->Inc();
      socket.close(ec);
      DoAccept();
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::string remote_ip;
    uint16_t remote_port = 0;
    auto ep = socket.remote_endpoint(ec);
    if (!ec) {
      remote_ip = ep.address().to_string();
      remote_port = ep.port();
    }
    auto state = std::make_shared<ConnState>();
    state->fd = socket.native_handle();
    {
      std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(state);
    }
    ++open_;
    connections_gauge_->Set(static_cast<double>(open_.load()));
    if (ssl_) {
      auto conn = std::make_shared<Connection<beast::ssl_stream<tcp::socket>>>(
          this, beast::ssl_stream<tcp::socket>(std::move(socket), *ssl_), std::move(state),
          std::move(remote_ip), remote_port);
      asio::post(io, [conn] { conn->Start(); });
    } else {
      auto conn = std::make_shared<Connection<tcp::socket>>(
          this, std::move(socket), std::move(state), std::move(remote_ip), remote_port);
      asio::post(io, [conn] { conn->Start(); });
    }
    DoAccept();
  }

  void WatchdogLoop() {
    pthread_setname_np(pthread_self(), "http-watchdog");
    std::unique_lock<std::mutex> lock(mu_);
    while (!watchdog_stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      int64_t now = NowNanos();
      for (auto& c : conns_) {
        int64_t d = c->deadline.load();
        if (d != 0 && now > d) c->Kill();
      }
    }
  }

  HttpServerOptions options_;
  HttpHandler* handler_;
  // Declared before the loops so that connections still referenced by pending completions
  // (destroyed with the io_contexts) never outlive it.
  std::unique_ptr<asio::ssl::context> ssl_;
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::optional<tcp::acceptor> acceptor_;           // on ios_[0]
  std::optional<asio::steady_timer> accept_timer_;  // on ios_[0]
  size_t next_io_ = 0;                              // used on ios_[0] only
  int acceptor_fd_ = -1;
  uint16_t port_ = 0;
  std::optional<WorkerPool> workers_;
  std::vector<std::thread> io_threads_;
  std::thread watchdog_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<size_t> open_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::shared_ptr<ConnState>> conns_;  // guarded by mu_
  bool watchdog_stop_ = false;                   // guarded by mu_

  ops::GaugeMetric* connections_gauge_ = nullptr;
  ops::CounterMetric* rejected_ = nullptr;
  ops::CounterMetric* timeouts_ = nullptr;
  ops::CounterMetric* loop_requests_ = nullptr;
  ops::CounterMetric* worker_requests_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Connection

template <typename Stream>
Connection<Stream>::Connection(HttpServerImpl* server, Stream stream,
                               std::shared_ptr<ConnState> state, std::string remote_ip,
                               uint16_t remote_port)
    : server_(server),
      stream_(std::move(stream)),
      state_(std::move(state)),
      remote_ip_(std::move(remote_ip)),
      remote_port_(remote_port) {}

template <typename Stream>
const HttpLimits& Connection<Stream>::limits() const {
  return server_->options().limits;
}

template <typename Stream>
bool Connection<Stream>::stopping() const {
  return server_->stopping();
}

template <typename Stream>
void Connection<Stream>::Start() {
  if constexpr (kTls) {
    state_->SetDeadline(limits().header_timeout_ms);
    stream_.async_handshake(asio::ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (ec) {
                                if (self->state_->killed) self->CountTimeout();
                                self->Close();
                                return;
                              }
                              self->handshake_done_ = true;
                              self->ReadNext();
                            });
  } else {
    ReadNext();
  }
}

template <typename Stream>
void Connection<Stream>::CountTimeout() {
  if (!stopping()) server_->timeouts().Inc();
}

// Waits for the first byte of the next request under the idle deadline, then gives the whole
// request head header_timeout_ms to arrive.
template <typename Stream>
void Connection<Stream>::ReadNext() {
  if (stopping()) {
    Close();
    return;
  }
  req_ = HttpRequest();
  res_ = HttpResponse();
  if (body_.capacity() > 64 * 1024) {
    std::string().swap(body_);  // don't keep a large buffer on an idle connection
  } else {
    body_.clear();
  }
  parser_.emplace();
  parser_->header_limit(limits().max_header_bytes);
  // Boost 1.74 compares Content-Length against an empty optional as "exceeded": use max.
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  if (buffer_.size() > 0) {  // a pipelined request is here already
    state_->SetDeadline(limits().header_timeout_ms);
    ParseHead();
    return;
  }
  state_->idle = true;
  state_->SetDeadline(limits().idle_timeout_ms);
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                            self->state_->idle = false;
                            if (ec || n == 0) {
                              if (self->state_->killed) self->CountTimeout();
                              self->Close();
                              return;
                            }
                            self->buffer_.commit(n);
                            self->state_->SetDeadline(self->limits().header_timeout_ms);
                            self->ParseHead();
                          });
}

template <typename Stream>
void Connection<Stream>::ReadHead() {
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                            if (ec || n == 0) {
                              // Slow-loris (the head did not arrive in time) or gone mid-head.
                              if (self->state_->killed) self->CountTimeout();
                              self->Close();
                              return;
                            }
                            self->buffer_.commit(n);
                            self->ParseHead();
                          });
}

template <typename Stream>
void Connection<Stream>::ParseHead() {
  beast::error_code ec;
  size_t used = parser_->put(buffer_.data(), ec);
  buffer_.consume(used);
  if (ec == http::error::need_more) {
    ReadHead();
    return;
  }
  if (ec == http::error::header_limit) {
    FailHead(431, "request header fields too large\n");
    return;
  }
  if (ec) {
    FailHead(400, "malformed HTTP request: " + ec.message() + "\n");
    return;
  }
  OnHead();
}

template <typename Stream>
void Connection<Stream>::OnHead() {
  auto& head = parser_->get();
  req_.method = std::string(head.method_string());
  req_.target = std::string(head.target());
  size_t q = req_.target.find('?');
  req_.path = req_.target.substr(0, q);
  if (q != std::string::npos) req_.query = req_.target.substr(q + 1);
  for (const auto& f : head) req_.headers.Add(std::string(f.name_string()), std::string(f.value()));
  req_.remote_ip = remote_ip_;
  req_.remote_port = remote_port_;
  req_.secure = kTls;
  expect_continue_ = EqualsIgnoreCase(std::string(head[http::field::expect]), "100-continue");
  keep_alive_ = head.keep_alive();
  version_ = head.version();

  bool run_inline = server_->handler()->RunsInline(req_);
  if (parser_->is_done()) {
    Dispatch(run_inline);
    return;
  }
  auto length = parser_->content_length();
  if (!expect_continue_ && !parser_->chunked() && length && *length <= kMaxBufferedBody) {
    ReadBufferedBody(run_inline);
    return;
  }
  // A streaming body: the handler reads it with blocking reads on a worker.
  state_->ClearDeadline();
  server_->worker_requests().Inc();
  server_->workers().Submit([self = this->shared_from_this()] { self->ServeOnWorker(false); });
}

template <typename Stream>
void Connection<Stream>::ReadBufferedBody(bool run_inline) {
  body_.resize(size_t(*parser_->content_length()));
  parser_->get().body().data = body_.data();
  parser_->get().body().size = body_.size();
  state_->SetDeadline(limits().idle_timeout_ms);
  http::async_read(stream_, buffer_, *parser_,
                   [self = this->shared_from_this(), run_inline](beast::error_code ec, size_t) {
                     if (ec == http::error::need_buffer) ec = {};
                     if (ec || !self->parser_->is_done()) {
                       if (self->state_->killed) self->CountTimeout();
                       self->Close();  // gone or stalled mid-body: nothing to answer
                       return;
                     }
                     self->Dispatch(run_inline);
                   });
}

template <typename Stream>
void Connection<Stream>::Dispatch(bool run_inline) {
  state_->ClearDeadline();
  if (!run_inline) {
    server_->worker_requests().Inc();
    server_->workers().Submit([self = this->shared_from_this()] { self->ServeOnWorker(true); });
    return;
  }
  server_->loop_requests().Inc();
  BufferedBodyReader body(body_, ContentLength());
  req_.body = &body;
  server_->handler()->Handle(req_, res_);
  req_.body = nullptr;
  close_after_ = res_.close_connection || !keep_alive_ || stopping();
  if (res_.body_source) {
    // Producing a streaming body may block: a worker writes it.
    server_->workers().Submit([self = this->shared_from_this()] { self->WriteOnWorker(); });
    return;
  }
  WriteResponseAsync();
}

template <typename Stream>
void Connection<Stream>::ServeOnWorker(bool body_buffered) {
  std::optional<BufferedBodyReader> buffered;
  std::optional<StreamBodyReader<Stream>> streaming;
  if (body_buffered) {
    req_.body = &buffered.emplace(body_, ContentLength());
  } else {
    req_.body = &streaming.emplace(stream_, buffer_, *parser_, *state_, limits(), expect_continue_);
  }
  server_->handler()->Handle(req_, res_);
  req_.body = nullptr;
  bool ok = true;
  if (streaming && streaming->failed()) {
    ok = false;  // the body stream broke; the connection is unusable
  } else {
    // An unread body must be drained before the next request can be parsed. Small leftovers
    // are read and dropped; large ones end the connection (RFC 7230 §6.6).
    if (streaming && !streaming->done()) {
      if (expect_continue_ || streaming->remaining().value_or(0) > kMaxDrain) {
        // The client has not sent the body, or what is left is too much to read and drop
        // (an upload refused from its Content-Length): answer now and close.
        res_.close_connection = true;
      } else {
        size_t drained = 0;
        char sink[16 * 1024];
        while (!streaming->done() && drained < kMaxDrain) {
          auto n = streaming->Read(sink, sizeof(sink));
          if (!n.ok() || *n == 0) break;
          drained += *n;
        }
        if (!streaming->done()) res_.close_connection = true;
      }
    }
    close_after_ = res_.close_connection || !keep_alive_ || stopping();
    ok = WriteResponseSync();
  }
  state_->ClearDeadline();
  asio::post(stream_.get_executor(),
             [self = this->shared_from_this(), ok] { self->AfterResponse(ok); });
}

template <typename Stream>
void Connection<Stream>::WriteOnWorker() {
  bool ok = WriteResponseSync();
  state_->ClearDeadline();
  asio::post(stream_.get_executor(),
             [self = this->shared_from_this(), ok] { self->AfterResponse(ok); });
}

// Writes res_ with blocking I/O (on a worker); false when the connection broke.
template <typename Stream>
bool Connection<Stream>::WriteResponseSync() {
  bool head_only = req_.method == "HEAD" || res_.status == 204 || res_.status == 304;
  bool keep_alive = !close_after_;
  out_.clear();
  Framing framing = AppendResponseHead(res_, version_, head_only, &keep_alive, &out_);
  close_after_ = !keep_alive;
  beast::error_code ec;
  state_->SetDeadline(limits().idle_timeout_ms);
  if (!res_.body_source || framing == Framing::kNone) {
    if (framing == Framing::kNone) {
      asio::write(stream_, asio::buffer(out_), ec);
    } else if constexpr (kTls) {
      out_.append(res_.body);  // see kTls: one buffer per write
      asio::write(stream_, asio::buffer(out_), ec);
    } else {
      std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), asio::buffer(res_.body)};
      asio::write(stream_, bufs, ec);
    }
    return !ec;
  }
  asio::write(stream_, asio::buffer(out_), ec);
  if (ec) return false;
  std::unique_ptr<char[]> chunk(new char[kIoChunk]);
  uint64_t sent = 0;
  bool chunked = framing == Framing::kChunked;
  for (;;) {
    auto n = res_.body_source->Read(chunk.get(), kIoChunk);
    if (!n.ok()) {
      // Headers are gone already; the only honest signal left is a broken connection.
      TLOG_WARN("http", "{}: response body failed after {} bytes: {}", server_->options().name,
                sent, n.status().ToString());
      return false;
    }
    if (*n == 0) break;
    state_->SetDeadline(limits().idle_timeout_ms);
    if (chunked) {
      char size_line[24];
      int len = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", *n);
      if constexpr (kTls) {
        asio::write(stream_, asio::buffer(size_line, size_t(len)), ec);
        if (!ec) asio::write(stream_, asio::buffer(chunk.get(), *n), ec);
        if (!ec) asio::write(stream_, asio::buffer("\r\n", 2), ec);
      } else {
        std::array<asio::const_buffer, 3> bufs{asio::buffer(size_line, size_t(len)),
                                               asio::buffer(chunk.get(), *n),
                                               asio::buffer("\r\n", 2)};
        asio::write(stream_, bufs, ec);
      }
    } else {
      asio::write(stream_, asio::buffer(chunk.get(), *n), ec);
    }
    if (ec) return false;
    sent += *n;
  }
  if (chunked) {
    asio::write(stream_, asio::buffer("0\r\n\r\n", 5), ec);
    if (ec) return false;
  }
  return true;
}

template <typename Stream>
void Connection<Stream>::WriteResponseAsync() {
  bool head_only = req_.method == "HEAD" || res_.status == 204 || res_.status == 304;
  bool keep_alive = !close_after_;
  out_.clear();
  Framing framing = AppendResponseHead(res_, version_, head_only, &keep_alive, &out_);
  close_after_ = !keep_alive;
  auto done = [self = this->shared_from_this()](beast::error_code ec, size_t) {
    self->state_->ClearDeadline();
    self->AfterResponse(!ec);
  };
  state_->SetDeadline(limits().idle_timeout_ms);
  if constexpr (kTls) {
    if (framing != Framing::kNone) out_.append(res_.body);  // see kTls: one buffer per write
    asio::async_write(stream_, asio::buffer(out_), std::move(done));
  } else {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(out_), framing == Framing::kNone
                                                                   ? asio::const_buffer()
                                                                   : asio::buffer(res_.body)};
    asio::async_write(stream_, bufs, std::move(done));
  }
}

template <typename Stream>
void Connection<Stream>::AfterResponse(bool ok) {
  if (!ok || close_after_) {
    Close();
    return;
  }
  ReadNext();
}

template <typename Stream>
void Connection<Stream>::FailHead(int status, std::string_view body) {
  out_ = SimpleResponse(status, body);
  state_->SetDeadline(limits().idle_timeout_ms);
  asio::async_write(
      stream_, asio::buffer(out_),
      [self = this->shared_from_this()](beast::error_code, size_t) { self->Close(); });
}

template <typename Stream>
void Connection<Stream>::Close() {
  if (closed_) return;
  closed_ = true;
  if constexpr (kTls) {
    if (handshake_done_ && !state_->killed) {
      // close_notify, then wait briefly for the peer's (RFC 8446 §6.1).
      state_->SetDeadline(std::min<uint32_t>(limits().header_timeout_ms, 2000));
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->CloseSocket(); });
      return;
    }
  }
  CloseSocket();
}

template <typename Stream>
void Connection<Stream>::CloseSocket() {
  state_->ClearDeadline();
  server_->Unregister(state_);
  beast::error_code ec;
  socket().shutdown(tcp::socket::shutdown_both, ec);
  socket().close(ec);
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                      HttpHandler* handler) {
  auto server = std::make_unique<HttpServerImpl>(options, handler);
  RETURN_IF_ERROR(server->Init());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace tarn::net
