#include "service/http_api.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"

namespace conduit::service {
namespace {

double seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

// Addresses ---------------------------------------------------------------

ListenAddress parse_listen_address(const std::string& text, const std::string& key) {
  auto bad = [&](const std::string& why) {
    return ConfigError(key + " = \"" + text + "\": " + why +
                       " (expected \"host:port\", \":port\" or \"[v6]:port\")");
  };
  auto colon = text.rfind(':');
  if (colon == std::string::npos) throw bad("no port");
  ListenAddress address;
  address.host = text.substr(0, colon);
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']')
    address.host = address.host.substr(1, address.host.size() - 2);
  if (address.host.empty()) address.host = "0.0.0.0";
  std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    throw bad("bad port");
  address.port = std::stoi(port);
  if (address.port > 65535) throw bad("port out of range");
  return address;
}

// HttpApi -----------------------------------------------------------------

// A small HTTP/1.1 server for two read-only endpoints, on one poll(2) thread,
// built to stay answerable under hostile clients: GET and HEAD only
// (405 otherwise, answered before any body is read), no request bodies (413),
// request line and headers bounded (431), a deadline to receive a request and
// another to send the response (408, or the connection is dropped), at most
// kMaxConnections at once (a new connection evicts the one that has been
// waiting longest for its request), one request per connection. Stopping it
// closes every connection at once, so no client can hold the process.
class HttpApi::Server {
 public:
  using Handler = std::function<std::pair<std::string, std::string>()>;  // type, body

  static constexpr std::size_t kMaxConnections = 32;
  static constexpr std::size_t kMaxRequestBytes = 8192;
  static constexpr auto kRequestTimeout = std::chrono::seconds(5);
  static constexpr auto kResponseTimeout = std::chrono::seconds(5);
  // After the response: unread input is drained for this long (closing with it
  // unread would reset the connection and could destroy the response in flight).
  static constexpr auto kLingerTimeout = std::chrono::seconds(1);
  static constexpr std::size_t kMaxLingerBytes = 65536;

  Server(const ListenAddress& address, const std::string& text) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    std::string port = std::to_string(address.port);
    if (int rc = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found); rc != 0)
      throw std::runtime_error("cannot listen on " + text + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    int error = 0;
    for (addrinfo* ai = found; ai && !listener_; ai = ai->ai_next) {
      UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      int one = 1;
      if (fd && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
          ::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 64) == 0)
        listener_ = std::move(fd);
      else
        error = errno;
    }
    if (!listener_)
      throw std::runtime_error("cannot listen on " + text + ": " + std::strerror(error));
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    wakeup_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wakeup_) throw_errno("eventfd");
  }

  ~Server() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    (void)!::write(wakeup_.get(), &one, sizeof one);
    thread_.join();
  }

  void route(const std::string& path, Handler handler) { routes_[path] = std::move(handler); }
  int port() const { return port_; }
  void start() {
    thread_ = std::thread([this] { serve(); });
  }

 private:
  using Clock = std::chrono::steady_clock;
  struct Connection {
    UniqueFd fd;
    std::string in;
    std::string out;  // the response, once there is one
    std::size_t sent = 0;
    std::size_t discarded = 0;
    Clock::time_point accepted;
    Clock::time_point deadline;
  };

  void serve() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wakeup_.get(), POLLIN, 0});
      auto now = Clock::now();
      // Out of descriptors (EMFILE): the listener rests a moment rather than spin.
      fds.push_back({now < accept_paused_until_ ? -1 : listener_.get(), POLLIN, 0});
      auto next_deadline = now + std::chrono::hours(1);
      if (now < accept_paused_until_) next_deadline = accept_paused_until_;
      for (auto& c : connections_) {
        fds.push_back({c.fd.get(), static_cast<short>(sending(c) ? POLLOUT : POLLIN), 0});
        next_deadline = std::min(next_deadline, c.deadline);
      }
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_deadline - now).count();
      int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::max<int64_t>(wait, 0)));
      if (ready < 0 && errno != EINTR) return;
      if (fds[0].revents) return;  // stopping: every connection closes with connections_
      // Serve the connections polled this time (accepting may reorder the list).
      std::vector<Connection> kept;
      kept.reserve(connections_.size());
      now = Clock::now();
      for (std::size_t i = 0; i < connections_.size(); ++i) {
        auto& c = connections_[i];
        short events = ready > 0 ? fds[i + 2].revents : 0;
        if (events && !handle(c, events)) continue;
        if (now >= c.deadline && !expire(c)) continue;
        kept.push_back(std::move(c));
      }
      connections_ = std::move(kept);
      if (ready > 0 && fds[1].revents) accept_all();
    }
  }

  void accept_all() {
    for (;;) {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
          accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
        return;  // EAGAIN, or a transient error: poll reports the next one
      }
      if (connections_.size() >= kMaxConnections) {
        // Evict one that is lingering after its response, else the one that
        // has waited longest for its request; if all are being answered, drop the new one.
        auto victim = std::find_if(connections_.begin(), connections_.end(),
                                   [](const Connection& c) { return lingering(c); });
        if (victim == connections_.end())
          for (auto it = connections_.begin(); it != connections_.end(); ++it)
            if (it->out.empty() &&
                (victim == connections_.end() || it->accepted < victim->accepted))
              victim = it;
        if (victim == connections_.end()) continue;
        connections_.erase(victim);
      }
      auto now = Clock::now();
      Connection c;
      c.fd = std::move(fd);
      c.accepted = now;
      c.deadline = now + kRequestTimeout;
      connections_.push_back(std::move(c));
    }
  }

  static bool sending(const Connection& c) { return !c.out.empty() && c.sent < c.out.size(); }
  static bool lingering(const Connection& c) { return !c.out.empty() && c.sent == c.out.size(); }

  // False when the connection is finished (closed by the caller).
  bool handle(Connection& c, short events) {
    if (sending(c)) {
      if (events & (POLLERR | POLLHUP)) return false;
      ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN || errno == EINTR;
      c.sent += static_cast<std::size_t>(n);
      if (!sending(c)) sent_all(c);
      return true;
    }
    char buffer[4096];
    ssize_t n = ::recv(c.fd.get(), buffer, sizeof buffer, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    if (lingering(c)) {
      c.discarded += static_cast<std::size_t>(n);
      return c.discarded < kMaxLingerBytes;
    }
    c.in.append(buffer, static_cast<std::size_t>(n));
    respond_if_complete(c);
    return true;
  }

  // Past its deadline: a request still arriving gets a 408; a response still
  // being sent, or a linger, ends. False: close it now.
  bool expire(Connection& c) {
    if (!c.out.empty()) return false;
    answer(c, "", 408, "Request Timeout", "text/plain", "request not received in time\n");
    return true;
  }

  void sent_all(Connection& c) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.deadline = Clock::now() + kLingerTimeout;
  }

  void respond_if_complete(Connection& c) {
    auto line_end = c.in.find('\n');
    if (line_end != std::string::npos) {
      // The method is known from the first line: refuse others before their body.
      std::string method = c.in.substr(0, c.in.find(' '));
      if (method != "GET" && method != "HEAD")
        return answer(c, method, 405, "Method Not Allowed", "text/plain",
                      "only GET and HEAD are served\n", "Allow: GET, HEAD\r\n");
    }
    auto head_end = c.in.find("\r\n\r\n");
    if (head_end == std::string::npos) head_end = c.in.find("\n\n");
    if (head_end == std::string::npos || head_end > kMaxRequestBytes) {
      if (c.in.size() > kMaxRequestBytes)
        answer(c, "", 431, "Request Header Fields Too Large", "text/plain",
               "request line and headers are limited to 8192 bytes\n");
      return;
    }
    std::istringstream head(c.in.substr(0, head_end));
    std::string request_line;
    std::getline(head, request_line);
    if (!request_line.empty() && request_line.back() == '\r') request_line.pop_back();
    std::istringstream parts(request_line);
    std::string method, target, version, extra;
    parts >> method >> target >> version;
    if (!parts || (parts >> extra) || version.rfind("HTTP/1.", 0) != 0 || target.empty() ||
        target[0] != '/')
      return answer(c, method, 400, "Bad Request", "text/plain", "malformed request line\n");
    for (std::string header; std::getline(head, header);) {
      auto colon = header.find(':');
      std::string name = header.substr(0, colon);
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string value = colon == std::string::npos ? "" : header.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      value.erase(value.find_last_not_of(" \t\r") + 1);
      if (name == "transfer-encoding" || (name == "content-length" && value != "0"))
        return answer(c, method, 413, "Content Too Large", "text/plain",
                      "request bodies are not accepted\n");
    }
    auto route = routes_.find(target.substr(0, target.find('?')));
    if (route == routes_.end())
      return answer(c, method, 404, "Not Found", "text/plain", "not found\n");
    auto [type, body] = route->second();
    answer(c, method, 200, "OK", type, body);
  }

  void answer(Connection& c, const std::string& method, int status, const char* reason,
              const std::string& type, const std::string& body, const std::string& extra = "") {
    c.out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra +
            "Connection: close\r\n\r\n" + (method == "HEAD" ? "" : body);
    c.in.clear();
    c.in.shrink_to_fit();
    c.deadline = Clock::now() + kResponseTimeout;
    // Most responses fit the socket buffer: send now rather than after another poll.
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) c.sent = static_cast<std::size_t>(n);
    if (!sending(c)) sent_all(c);
  }

  UniqueFd listener_;
  UniqueFd wakeup_;
  int port_ = 0;
  std::map<std::string, Handler> routes_;
  std::vector<Connection> connections_;  // serve() thread only
  Clock::time_point accept_paused_until_{};
  std::thread thread_;
};

bool HttpApi::wanted(const Config& config) {
  return !config.api.addr.empty() || config.metrics.mode == "ON";
}

HttpApi::HttpApi(const Config& config, const Supervisor& supervisor, Logger& logger)
    : supervisor_(supervisor), logger_(logger), metrics_(config.metrics.prefix) {
  bool health = !config.api.addr.empty();
  bool metrics = config.metrics.mode == "ON";
  std::optional<ListenAddress> health_address, metrics_address;
  if (health) health_address = parse_listen_address(config.api.addr, "[api] addr");
  if (metrics) metrics_address = parse_listen_address(config.metrics.addr, "[metrics] addr");
  // One server when both keys name the same address.
  bool shared = health && metrics && config.api.addr == config.metrics.addr;

  auto add_health = [this](Server& server) {
    server.route("/health",
                 [this] { return std::make_pair(std::string("application/json"), health_json()); });
  };
  auto add_metrics = [this](Server& server) {
    server.route("/metrics", [this] {
      return std::make_pair(std::string("text/plain; version=0.0.4; charset=utf-8"),
                            metrics_.render(supervisor_.status()));
    });
  };
  if (health) {
    auto server = std::make_unique<Server>(*health_address, config.api.addr);
    add_health(*server);
    if (shared) add_metrics(*server);
    health_port_ = server->port();
    if (shared) metrics_port_ = server->port();
    servers_.push_back(std::move(server));
  }
  if (metrics && !shared) {
    auto server = std::make_unique<Server>(*metrics_address, config.metrics.addr);
    add_metrics(*server);
    metrics_port_ = server->port();
    servers_.push_back(std::move(server));
  }
  for (auto& server : servers_) server->start();
  if (health_port_)
    logger_.info("serving /health on " + health_address->host + ":" +
                 std::to_string(*health_port_));
  if (metrics_port_)
    logger_.info("serving /metrics on " + (shared ? health_address : metrics_address)->host + ":" +
                 std::to_string(*metrics_port_));
}

HttpApi::~HttpApi() = default;

std::string HttpApi::health_json() const {
  Status status = supervisor_.status();
  nlohmann::ordered_json j;
  j["round"] = status.next_round;
  j["state"] = std::string(to_string(status.state));
  j["errors"] = metrics_.recent_errors();
  j["stop-reason"] = std::string(to_string(status.cause.reason));
  j["stop-detail"] = status.cause.detail;
  j["uptime-seconds"] = seconds(std::chrono::steady_clock::now() - status.started);
  return j.dump();
}

}  // namespace conduit::service
