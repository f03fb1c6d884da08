#include "service/http_api.hpp"

#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

namespace conduit::service {
namespace {

double seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

// ObserverFanout ----------------------------------------------------------

void ObserverFanout::on_state(State state) {
  for (auto* o : observers_) o->on_state(state);
}
void ObserverFanout::on_ready(uint64_t next_round) {
  for (auto* o : observers_) o->on_ready(next_round);
}
void ObserverFanout::on_exported(uint64_t round, std::size_t txn_count) {
  for (auto* o : observers_) o->on_exported(round, txn_count);
}
void ObserverFanout::on_exported_block(const BlockData& block) {
  for (auto* o : observers_) o->on_exported_block(block);
}
void ObserverFanout::on_reload_finished(bool ok, const std::string& detail) {
  for (auto* o : observers_) o->on_reload_finished(ok, detail);
}
void ObserverFanout::on_retry(PluginKind kind, const std::string& plugin, uint64_t round) {
  for (auto* o : observers_) o->on_retry(kind, plugin, round);
}
void ObserverFanout::on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                                    std::chrono::nanoseconds elapsed) {
  for (auto* o : observers_) o->on_plugin_time(kind, plugin, round, elapsed);
}
void ObserverFanout::on_plugin_error(const std::string& message) {
  for (auto* o : observers_) o->on_plugin_error(message);
}

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

class HttpApi::Server {
 public:
  Server(const ListenAddress& address, const std::string& text) {
    server_.set_keep_alive_max_count(10);
    server_.set_read_timeout(std::chrono::seconds(5));
    if (address.port == 0) {
      port_ = server_.bind_to_any_port(address.host);
      if (port_ < 0) throw std::runtime_error("cannot listen on " + text);
    } else {
      if (!server_.bind_to_port(address.host, address.port))
        throw std::runtime_error("cannot listen on " + text);
      port_ = address.port;
    }
  }
  ~Server() {
    if (!thread_.joinable()) return;
    // stop() is a no-op until the listener runs; start() waited for that.
    server_.stop();
    thread_.join();
  }

  httplib::Server& http() { return server_; }
  int port() const { return port_; }

  void start() {
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      done_ = true;
    });
    while (!server_.is_running() && !done_) std::this_thread::yield();
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> done_{false};
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

  auto add_health = [this](httplib::Server& http) {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
      response.set_content(health_json(), "application/json");
    });
  };
  auto add_metrics = [this](httplib::Server& http) {
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
      response.set_content(metrics_.render(supervisor_.status()),
                           "text/plain; version=0.0.4; charset=utf-8");
    });
  };
  if (health) {
    auto server = std::make_unique<Server>(*health_address, config.api.addr);
    add_health(server->http());
    if (shared) add_metrics(server->http());
    health_port_ = server->port();
    if (shared) metrics_port_ = server->port();
    servers_.push_back(std::move(server));
  }
  if (metrics && !shared) {
    auto server = std::make_unique<Server>(*metrics_address, config.metrics.addr);
    add_metrics(server->http());
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
