// A small MQTT 3.1.1 publishing client for `tarn simulate` (the load generator of bench/e2e): one
// non-blocking TCP connection, TLS straight on OpenSSL (mutual TLS with the device's certificate),
// driven by its owner's epoll loop. It publishes QoS 0 and 1, keeps at most `max_inflight` QoS 1
// messages unacknowledged, resends those with DUP after a reconnect (MQTT 3.1.1 §4.4), and sends
// PINGREQ when the connection has been quiet for the keep-alive (§3.1.2.10).
//
// Why not libmosquitto: the simulator shares the machine's two cores with the lake it measures,
// and on this paravirtualised VM every system call is dear. libmosquitto writes a byte to its
// own socketpair on every publish, takes mutexes, and reads TLS without read-ahead (a record
// header, then its body, then EAGAIN: three read() per PUBACK). Here a publish is exactly one
// write() when the socket takes it, and a PUBACK one read(): OpenSSL reads ahead, and the read
// loop stops as soon as the socket has been drained (a read() returned less than asked, or
// EAGAIN) and OpenSSL holds nothing — it never spends a read() on learning that the socket is
// empty. Figures in docs/performance.md ("End to end").
//
// Thread-safety: none. A client belongs to one thread (the worker that owns its epoll set);
// only `connected()` may be read from other threads.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tarn::cli {

// A device's TLS identity, read once (reconnects reuse it).
struct TlsIdentity {
  X509* cert = nullptr;
  STACK_OF(X509)* chain = nullptr;  // extra certificates after the first in the file, if any
  EVP_PKEY* key = nullptr;
  TlsIdentity() = default;
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;
  ~TlsIdentity();
};
// Reads a PEM certificate (chain) file and its private key; false with `error` set otherwise.
bool LoadTlsIdentity(const std::string& cert_file, const std::string& key_file, TlsIdentity* out,
                     std::string* error);
// The client context every device shares: verifies the server against `ca_file`, or the
// certificates in `ca_path` when no file is given. Null with `error` set on failure.
SSL_CTX* MakeClientTlsContext(const std::string& ca_file, const std::string& ca_path, std::string* error);

// Where and how every client of a fleet connects.
struct MqttEndpoint {
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string host;         // SNI and the name (or address) the server certificate must match
  SSL_CTX* tls = nullptr;   // null: plain MQTT
  bool has_credentials = false;
  std::string username, password;
  uint16_t keep_alive_s = 30;
  int max_inflight = 100;
};

class MqttClient {
 public:
  using Clock = std::chrono::steady_clock;

  // Events, called on the owner's thread from within the client's calls.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnConnected() = 0;                  // CONNACK accepted
    virtual void OnRefused(uint8_t return_code) = 0; // CONNACK refused (3.1.1 §3.2.2.3)
    // The connection ended (or never came up); `was_connected`: after a CONNACK. The unacked
    // QoS 1 messages stay and are resent after the next Connect().
    virtual void OnLost(bool was_connected, const std::string& why) = 0;
    virtual void OnAcked(uint64_t tag) = 0;          // PUBACK of a QoS 1 publish
  };

  MqttClient(const MqttEndpoint* endpoint, std::string client_id, const TlsIdentity* identity,
             Listener* listener);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  // Starts a connection (TCP, then TLS, then CONNECT) registered in `epoll_fd` with this client
  // as its data pointer; events go to OnEvent. False (and OnLost) when the socket cannot even
  // be started.
  bool Connect(int epoll_fd);
  void OnEvent(uint32_t epoll_events);
  // Keep-alive and the connect timeout; call a few times a second.
  void Tick(Clock::time_point now);

  enum class PublishResult { kOk, kLost };
  // QoS 0 or 1. QoS 1 requires CanPublish(); the message is kept until its PUBACK (then
  // OnAcked(tag)) and survives a lost connection. kLost: the connection died while writing (QoS 0:
  // the message is gone; QoS 1: it is kept and resent).
  PublishResult Publish(std::string_view topic, std::string_view payload, int qos, uint64_t tag);
  bool CanPublish() const { return state_ == State::kConnected && ring_count_ < ring_.size(); }
  size_t unacked() const { return unacked_; }
  // DISCONNECT, close_notify, close (end of run). Unacked messages stay counted in unacked().
  void Disconnect();

  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  bool idle() const { return state_ == State::kDisconnected; }

  // System calls on the socket since the start, for the run's summary.
  struct IoCounts {
    uint64_t reads = 0, writes = 0;
  };
  const IoCounts& io() const { return io_; }

 private:
  enum class State { kDisconnected, kTcpConnecting, kTlsHandshake, kAwaitConnack, kConnected };
  struct Inflight {
    uint16_t packet_id = 0;
    bool acked = false;
    uint64_t tag = 0;
    std::string packet;  // the encoded PUBLISH, for the resend (buffer reused)
  };

  void Fail(const std::string& why);
  void CloseSocket();
  void StartSession();   // TCP is up: TLS handshake or CONNECT
  void Handshake();
  void SendConnect();
  bool Send(std::string_view bytes);  // false: connection lost (Fail called)
  bool Flush();                       // writes out_; false: connection lost
  // Raw I/O: one system call each; <0 with errno-like `*again` for would-block.
  long WriteSome(const char* p, size_t n, bool* again);
  void ReadAvailable();
  bool HandleInput();  // false: connection lost
  bool HandlePacket(uint8_t header, std::string_view body);
  std::string SslError(int ssl_error) const;
  static long BioCallback(BIO* b, int oper, const char* argp, size_t len, int argi, long argl,
                          int ret, size_t* processed);

  const MqttEndpoint* ep_;
  const std::string client_id_;
  const TlsIdentity* identity_;
  Listener* listener_;

  State state_ = State::kDisconnected;
  std::atomic<bool> connected_{false};
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool socket_drained_ = false;  // the last read() returned less than asked, EAGAIN or EOF
  bool write_blocked_ = false;   // out_ waits for EPOLLOUT
  std::string out_;              // bytes not yet taken by the socket (or SSL_write)
  size_t out_off_ = 0;
  std::string in_;               // received bytes not yet a whole packet
  std::vector<char> read_buf_;

  // QoS 1 messages in send order (a ring of max_inflight), PUBACKed ones removed from the head.
  std::vector<Inflight> ring_;
  size_t ring_head_ = 0, ring_count_ = 0, unacked_ = 0;
  uint16_t last_packet_id_ = 0;

  Clock::time_point connect_started_{}, last_in_{}, last_out_{}, ping_sent_{};
  IoCounts io_;
};

}  // namespace tarn::cli
