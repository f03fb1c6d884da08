#include "service/http_api.hpp"

#include <httplib.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

namespace conduit::service {
namespace {

// Prometheus' default buckets, in seconds.
const std::vector<double> kTimeBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kTxnBuckets = {0,   1,   5,    10,   25,   50,    100,
                                         250, 500, 1000, 2500, 5000, 10000, 25000};

std::string format_number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  // The shortest text that reads back as the same double ("0.0005", not "0.00050000000000000001").
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

// Label values: backslash, double quote and newline escaped (exposition format).
std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

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

// Histogram ---------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::string prefix = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    double bound = i < bounds_.size() ? bounds_[i] : INFINITY;
    out += name + "_bucket{" + prefix + "le=\"" + format_number(bound) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + format_number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

// Metrics -----------------------------------------------------------------

Metrics::Metrics(std::string prefix)
    : prefix_(prefix.empty() ? "" : prefix + "_"),
      import_time_(kTimeBuckets),
      importer_time_(kTimeBuckets),
      exporter_time_(kTimeBuckets),
      txns_per_block_(kTxnBuckets) {}

void Metrics::on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                             std::chrono::nanoseconds elapsed) {
  std::lock_guard lock(mutex_);
  switch (kind) {
    case PluginKind::importer:
      importer_time_.observe(seconds(elapsed));
      round_started_[round] = std::chrono::steady_clock::now() - elapsed;
      break;
    case PluginKind::processor:
      processor_time_.try_emplace(plugin, kTimeBuckets).first->second.observe(seconds(elapsed));
      break;
    case PluginKind::exporter:
      exporter_time_.observe(seconds(elapsed));
      break;
  }
}

void Metrics::on_exported(uint64_t round, std::size_t txn_count) {
  std::lock_guard lock(mutex_);
  imported_round_ = round;
  imported_txns_ += txn_count;
  txns_per_block_.observe(static_cast<double>(txn_count));
  auto it = round_started_.find(round);
  if (it != round_started_.end())
    import_time_.observe(seconds(std::chrono::steady_clock::now() - it->second));
  // Rounds up to this one are done; older entries are rounds a reload dropped.
  round_started_.erase(round_started_.begin(), round_started_.upper_bound(round));
}

void Metrics::on_retry(PluginKind kind, const std::string& plugin, uint64_t) {
  std::lock_guard lock(mutex_);
  ++retries_[std::string(to_string(kind)) + ":" + plugin];
}

void Metrics::on_plugin_error(const std::string& message) {
  std::lock_guard lock(mutex_);
  errors_.push_back(message);
  while (errors_.size() > kMaxErrors) errors_.pop_front();
}

std::vector<std::string> Metrics::recent_errors() const {
  std::lock_guard lock(mutex_);
  return {errors_.begin(), errors_.end()};
}

std::string Metrics::render(const Status& status) const {
  std::lock_guard lock(mutex_);
  std::string out;
  std::string name = prefix_ + "imported_round";
  header(out, name, "gauge", "The most recent round exported (committed).");
  if (imported_round_) out += name + " " + std::to_string(*imported_round_) + "\n";

  name = prefix_ + "import_time_sec";
  header(out, name, "histogram",
         "Time from the start of a round's import to its commit by the exporter, in seconds.");
  import_time_.render(out, name, "");

  name = prefix_ + "importer_time_sec";
  header(out, name, "histogram", "Time spent at importer step, in seconds.");
  importer_time_.render(out, name, "");

  name = prefix_ + "processor_time_sec";
  header(out, name, "histogram", "Time spent running a processor, in seconds.");
  for (const auto& [processor, histogram] : processor_time_)
    histogram.render(out, name, "processor_name=\"" + label_value(processor) + "\"");

  name = prefix_ + "exporter_time_sec";
  header(out, name, "histogram", "Time spent at exporter step, in seconds.");
  exporter_time_.render(out, name, "");

  name = prefix_ + "imported_tx_per_block";
  header(out, name, "histogram", "Transactions per block.");
  txns_per_block_.render(out, name, "");

  name = prefix_ + "imported_txns_total";
  header(out, name, "counter", "Transactions exported since start.");
  out += name + " " + std::to_string(imported_txns_) + "\n";

  name = prefix_ + "pipeline_retry_count";
  header(out, name, "counter", "Plugin calls retried since start.");
  for (const auto& [plugin, count] : retries_)
    out += name + "{plugin=\"" + label_value(plugin) + "\"} " + std::to_string(count) + "\n";

  name = prefix_ + "state";
  header(out, name, "gauge", "The service state: 1 for the current one.");
  for (State s :
       {State::starting, State::running, State::stopping, State::reloading, State::stopped})
    out += name + "{state=\"" + std::string(to_string(s)) + "\"} " +
           (s == status.state ? "1" : "0") + "\n";

  name = prefix_ + "stop_reason";
  header(out, name, "gauge", "1 for the reason the pipeline stopped (no sample while running).");
  if (status.cause.reason != StopReason::none)
    out += name + "{reason=\"" + std::string(to_string(status.cause.reason)) + "\"} 1\n";
  return out;
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
