#include "net/socket_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>

#include "core/data_dir.h"
#include "core/log.h"

namespace tarn::net {

namespace {

std::string OpenSslError(const char* what) {
  unsigned long e = ERR_get_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return std::string(what) + ": " + (e ? buf : "unknown OpenSSL error");
}

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Creates a self-signed EC P-256 certificate for localhost (so `sslmode=require` works
// out of the box; `verify-full` needs a configured certificate from a real CA).
Status WriteSelfSigned(const std::string& cert_path, const std::string& key_path) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  if (!pkey) return Error(ErrorCode::kInternal, OpenSslError("EC key generation"));
  X509* x = X509_new();
  Status st;
  do {
    X509_set_version(x, 2);
    std::string serial = std::to_string(static_cast<long>(::time(nullptr)));
    ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(::time(nullptr)));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Tarn"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* ext =
        X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    if (ext) {
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    if (!X509_sign(x, pkey, EVP_sha256())) {
      st = Error(ErrorCode::kInternal, OpenSslError("signing the self-signed certificate"));
      break;
    }
    BIO* kb = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(kb, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    BIO* cb = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cb, x);
    char* kp = nullptr;
    long kn = BIO_get_mem_data(kb, &kp);
    char* cp = nullptr;
    long cn = BIO_get_mem_data(cb, &cp);
    std::string key_pem(kp, static_cast<size_t>(kn));
    std::string cert_pem(cp, static_cast<size_t>(cn));
    BIO_free(kb);
    BIO_free(cb);
    st = WriteFileAtomic(key_path, key_pem, 0600);
    if (st.ok()) st = WriteFileAtomic(cert_path, cert_pem, 0644);
  } while (false);
  X509_free(x);
  EVP_PKEY_free(pkey);
  return st;
}

}  // namespace

// ---- TlsServerContext ----

TlsServerContext::~TlsServerContext() {
  if (ctx_) SSL_CTX_free(static_cast<SSL_CTX*>(ctx_));
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::FromFiles(const std::string& cert_file,
                                                                      const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return Error(ErrorCode::kInternal, OpenSslError("SSL_CTX_new"));
  std::shared_ptr<TlsServerContext> out(new TlsServerContext());
  out->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return Error(ErrorCode::kInvalidArgument, OpenSslError(("loading certificate " + cert_file).c_str()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return Error(ErrorCode::kInvalidArgument, OpenSslError(("loading private key " + key_file).c_str()));
  }
  return out;
}

Result<std::shared_ptr<TlsServerContext>> TlsServerContext::SelfSigned(const std::string& dir,
                                                                       const std::string& name) {
  std::string cert = dir + "/" + name + ".crt";
  std::string key = dir + "/" + name + ".key";
  std::error_code ec;
  if (!std::filesystem::exists(cert, ec) || !std::filesystem::exists(key, ec)) {
    RETURN_IF_ERROR(WriteSelfSigned(cert, key));
  }
  return FromFiles(cert, key);
}

// ---- Socket ----

Socket::Socket(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}

Socket::~Socket() {
  if (ssl_) SSL_free(static_cast<SSL*>(ssl_));
  ::close(fd_);
}

Result<size_t> Socket::Read(char* buf, size_t n) {
  if (ssl_) {
    size_t got = 0;
    int rc = SSL_read_ex(static_cast<SSL*>(ssl_), buf, n, &got);
    if (rc == 1) return got;
    int err = SSL_get_error(static_cast<SSL*>(ssl_), rc);
    if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
    ERR_clear_error();
    if (err == SSL_ERROR_SYSCALL) return size_t{0};  // peer went away without close_notify
    return Error(ErrorCode::kIoError, "TLS read failed");
  }
  for (;;) {
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return size_t{0};
    return Error(ErrorCode::kIoError, Errno("recv"));
  }
}

Status Socket::ReadFull(char* buf, size_t n) {
  while (n > 0) {
    ASSIGN_OR_RETURN(size_t got, Read(buf, n));
    if (got == 0) return Error(ErrorCode::kIoError, "connection closed");
    buf += got;
    n -= got;
  }
  return Status::OK();
}

Status Socket::WriteAll(std::string_view data) {
  while (!data.empty()) {
    if (ssl_) {
      size_t put = 0;
      if (SSL_write_ex(static_cast<SSL*>(ssl_), data.data(), data.size(), &put) != 1) {
        ERR_clear_error();
        return Error(ErrorCode::kIoError, "TLS write failed");
      }
      data.remove_prefix(put);
      continue;
    }
    ssize_t w = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Error(ErrorCode::kIoError, Errno("send"));
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  return Status::OK();
}

Status Socket::StartTls(const TlsServerContext& ctx) {
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx.native()));
  if (!ssl) return Error(ErrorCode::kInternal, OpenSslError("SSL_new"));
  SSL_set_fd(ssl, fd_);
  if (SSL_accept(ssl) != 1) {
    std::string msg = OpenSslError("TLS handshake");
    SSL_free(ssl);
    return Error(ErrorCode::kIoError, msg);
  }
  ssl_ = ssl;
  return Status::OK();
}

void Socket::Shutdown() { ::shutdown(fd_, SHUT_RDWR); }

// ---- SocketServer ----

struct SocketServer::Impl {
  SocketServerOptions options;
  Handler handler;
  int listen_fd = -1;
  int wake_pipe[2] = {-1, -1};
  std::string address;
  std::thread acceptor;
  std::mutex mu;
  std::condition_variable cv;
  std::set<Socket*> live;  // guarded by mu
  size_t threads = 0;      // guarded by mu
  bool stopping = false;   // guarded by mu

  void AcceptLoop(std::shared_ptr<Impl> self);
};

void SocketServer::Impl::AcceptLoop(std::shared_ptr<Impl> self) {
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
    int pr = ::poll(fds, 2, -1);
    if (pr < 0) {
      if (errno == EINTR) continue;
      TLOG_ERROR(options.name, "poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      // EMFILE and friends: back off briefly rather than spin.
      TLOG_WARN(options.name, "accept: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
      port = ntohs(a->sin6_port);
    }
    auto sock = std::make_unique<Socket>(fd, std::string(host) + ":" + std::to_string(port));
    bool over_limit;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (stopping) return;
      over_limit = live.size() >= options.max_connections;
      live.insert(sock.get());
      ++threads;
    }
    std::thread([self, s = std::move(sock), over_limit]() mutable {
      self->handler(*s, over_limit);
      std::lock_guard<std::mutex> lock(self->mu);
      self->live.erase(s.get());
      s.reset();
      --self->threads;
      self->cv.notify_all();
    }).detach();
  }
}

Result<std::unique_ptr<SocketServer>> SocketServer::Start(const SocketServerOptions& options, Handler handler) {
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string host = options.listen.host.empty() ? "0.0.0.0" : options.listen.host;
  std::string port = std::to_string(options.listen.port);
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Error(ErrorCode::kInvalidArgument, "listen address '" + host + "': " + gai_strerror(rc));
  }
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ::freeaddrinfo(res);
    return Error(ErrorCode::kIoError, Errno("socket"));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 512) != 0) {
    std::string msg = Errno(("binding " + options.name + " to " + host + ":" + port).c_str());
    ::freeaddrinfo(res);
    ::close(fd);
    return Error(ErrorCode::kIoError, msg);
  }
  ::freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int bound = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  impl->listen_fd = fd;
  impl->address = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(bound);
  if (::pipe2(impl->wake_pipe, O_CLOEXEC) != 0) {
    ::close(fd);
    return Error(ErrorCode::kIoError, Errno("pipe"));
  }
  impl->acceptor = std::thread([impl]() { impl->AcceptLoop(impl); });
  std::unique_ptr<SocketServer> out(new SocketServer());
  out->impl_ = impl;
  return out;
}

SocketServer::~SocketServer() { Stop(); }

std::string SocketServer::address() const { return impl_->address; }

void SocketServer::Stop() {
  if (!impl_) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  char c = 1;
  (void)!::write(impl_->wake_pipe[1], &c, 1);
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  ::close(impl_->listen_fd);
  ::close(impl_->wake_pipe[0]);
  ::close(impl_->wake_pipe[1]);
  std::unique_lock<std::mutex> lock(impl_->mu);
  for (Socket* s : impl_->live) s->Shutdown();
  impl_->cv.wait(lock, [&] { return impl_->threads == 0; });
}

}  // namespace tarn::net
