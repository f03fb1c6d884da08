// Go Conduit's Prometheus metrics (conduit/metrics/metrics.go): the same
// names, types and labels, so that existing dashboards keep working, fed by the
// Supervisor's observer hooks; plus a few conduit-only metrics under their own
// names. Rendered in the text exposition format by http_api.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/supervisor.hpp"

namespace conduit::service {

// A Prometheus histogram with fixed upper bounds (cumulative on output).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends `name_bucket{...le=".."}`, `name_sum`, `name_count` lines. `labels`
  // is either empty or `key="value"` pairs without braces.
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// A Prometheus summary without quantiles (client_golang's NewSummary without
// Objectives, as Go Conduit declares them): `name_sum` and `name_count`.
class Summary {
 public:
  void observe(double value) {
    sum_ += value;
    ++count_;
  }
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics final : public Observer {
 public:
  // `prefix` is Go's metrics.prefix, used as the Prometheus subsystem.
  explicit Metrics(std::string prefix);

  void on_exported(uint64_t round, std::size_t txn_count) override;
  void on_exported_block(const BlockData& block) override;
  void on_retry(PluginKind kind, const std::string& plugin, uint64_t round) override;
  void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                      std::chrono::nanoseconds elapsed) override;
  void on_plugin_error(const std::string& message) override;

  // The Prometheus text exposition format (version 0.0.4).
  std::string render(const Status& status) const;
  // The most recent plugin errors, oldest first (at most kMaxErrors).
  std::vector<std::string> recent_errors() const;
  static constexpr std::size_t kMaxErrors = 10;

 private:
  std::string prefix_;
  mutable std::mutex mutex_;
  // Go Conduit's.
  uint64_t imported_round_ = 0;
  Summary import_time_;     // import_time_sec: the export call, as Go observes it
  Summary txns_per_block_;  // imported_tx_per_block: payset plus inner transactions
  std::map<std::string, uint64_t> imported_txns_;  // imported_txns{txn_type}, last block's
  Summary importer_time_;
  std::map<std::string, Summary> processor_time_;  // by processor name
  Summary exporter_time_;
  Histogram retry_count_;                            // pipeline_retry_count
  std::map<std::string, uint64_t> pending_retries_;  // by "kind:name", since its last success
  // conduit's own.
  uint64_t exported_txns_ = 0;
  std::map<std::string, uint64_t> retries_;  // by "kind:name"
  std::deque<std::string> errors_;
};

}  // namespace conduit::service
