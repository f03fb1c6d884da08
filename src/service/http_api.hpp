// The HTTP face of the daemon: GET /health ([api] addr) and GET /metrics
// ([metrics] mode = "ON", addr, prefix) as Go Conduit serves them. An adapter:
// it reads the Supervisor's status and collects metrics through the observer
// hooks; the core knows nothing about HTTP.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/supervisor.hpp"
#include "service/metrics.hpp"

namespace conduit::service {

// "host:port", ":port" (every interface) or "[v6]:port". Throws ConfigError.
struct ListenAddress {
  std::string host;
  int port = 0;
};
ListenAddress parse_listen_address(const std::string& text, const std::string& key);

class HttpApi {
 public:
  // True when the configuration asks for /health or /metrics.
  static bool wanted(const Config& config);

  // Binds the configured addresses and starts serving. Throws ConfigError for
  // an address that does not parse, std::runtime_error when it cannot bind.
  HttpApi(const Config& config, const Supervisor& supervisor, Logger& logger);
  ~HttpApi();  // stops the servers and joins their threads
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  Observer& observer() { return metrics_; }
  // The bound ports (useful with port 0); nullopt when that endpoint is off.
  std::optional<int> health_port() const { return health_port_; }
  std::optional<int> metrics_port() const { return metrics_port_; }

  std::string health_json() const;

 private:
  class Server;
  const Supervisor& supervisor_;
  Logger& logger_;
  Metrics metrics_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::optional<int> health_port_;
  std::optional<int> metrics_port_;
};

}  // namespace conduit::service
