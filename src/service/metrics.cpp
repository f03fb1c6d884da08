#include "service/metrics.hpp"

#include <charconv>
#include <cmath>

namespace conduit::service {
namespace {

// Prometheus' default buckets (client_golang's DefBuckets).
const std::vector<double> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};

std::string format_number(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  // The shortest text that reads back as the same double ("0.005", not "0.0050000000000000001").
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

// Go's numInnerTxn: inner transactions, recursively.
uint64_t inner_count(FieldView stxn) {
  uint64_t n = 0;
  FieldView inner = inner_txns(stxn);
  for (size_t i = 0; i < inner.size(); ++i) n += 1 + inner_count(inner.at(i));
  return n;
}

}  // namespace

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

void Summary::render(std::string& out, const std::string& name, const std::string& labels) const {
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + format_number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

// Metrics -----------------------------------------------------------------

Metrics::Metrics(std::string prefix)
    : prefix_(prefix.empty() ? "" : prefix + "_"), retry_count_(kDefaultBuckets) {}

void Metrics::on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t,
                             std::chrono::nanoseconds elapsed) {
  std::lock_guard lock(mutex_);
  switch (kind) {
    case PluginKind::importer:
      importer_time_.observe(seconds(elapsed));
      break;
    case PluginKind::processor:
      processor_time_[plugin].observe(seconds(elapsed));
      break;
    case PluginKind::exporter:
      exporter_time_.observe(seconds(elapsed));
      import_time_.observe(seconds(elapsed));  // Go: addMetrics(blk, exportTime)
      break;
  }
  // A success: the retries it took, if any ("retries since last successful run").
  auto it = pending_retries_.find(std::string(to_string(kind)) + ":" + plugin);
  if (it != pending_retries_.end()) {
    retry_count_.observe(static_cast<double>(it->second));
    pending_retries_.erase(it);
  }
}

void Metrics::on_exported(uint64_t round, std::size_t txn_count) {
  std::lock_guard lock(mutex_);
  imported_round_ = round;
  exported_txns_ += txn_count;
}

void Metrics::on_exported_block(const BlockData& block) {
  // Go's addMetrics: counts by type in this block, "inner" when there are any;
  // a type absent from the block keeps its last value, as Go's GaugeVec does.
  std::map<std::string, uint64_t> by_type;
  uint64_t inner = 0;
  for (size_t i = 0; i < block.txn_count(); ++i) {
    FieldView stxn = block.payset_entry(i);
    ++by_type[std::string(txn_of(stxn)["type"].as_bytes().value_or(""))];
    inner += inner_count(stxn);
  }
  if (inner != 0) by_type["inner"] = inner;
  std::lock_guard lock(mutex_);
  for (const auto& [type, count] : by_type) imported_txns_[type] = count;
  txns_per_block_.observe(static_cast<double>(block.txn_count() + inner));
}

void Metrics::on_retry(PluginKind kind, const std::string& plugin, uint64_t) {
  std::lock_guard lock(mutex_);
  std::string key = std::string(to_string(kind)) + ":" + plugin;
  ++retries_[key];
  ++pending_retries_[key];
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
  // Go Conduit's, in its registration order, with its help texts.
  std::string name = prefix_ + "import_time_sec";
  header(out, name, "summary", "Total block upload and processing time in seconds.");
  import_time_.render(out, name, "");

  name = prefix_ + "imported_tx_per_block";
  header(out, name, "summary", "Transactions per block.");
  txns_per_block_.render(out, name, "");

  name = prefix_ + "imported_round";
  header(out, name, "gauge", "The most recent round indexer has imported.");
  out += name + " " + std::to_string(imported_round_) + "\n";

  name = prefix_ + "imported_txns";
  if (!imported_txns_.empty()) {
    header(out, name, "gauge", "Imported transactions grouped by type");
    for (const auto& [type, count] : imported_txns_)
      out += name + "{txn_type=\"" + label_value(type) + "\"} " + std::to_string(count) + "\n";
  }

  name = prefix_ + "importer_time_sec";
  header(out, name, "summary", "Time spent at importer step");
  importer_time_.render(out, name, "");

  name = prefix_ + "processor_time_sec";
  if (!processor_time_.empty()) {
    header(out, name, "summary", "Time spent running a processor");
    for (const auto& [processor, summary] : processor_time_)
      summary.render(out, name, "processor_name=\"" + label_value(processor) + "\"");
  }

  name = prefix_ + "exporter_time_sec";
  header(out, name, "summary", "Time spent at exporter step");
  exporter_time_.render(out, name, "");

  name = prefix_ + "pipeline_retry_count";
  header(out, name, "histogram", "Total pipeline retries since last successful run");
  retry_count_.render(out, name, "");

  // conduit's own.
  name = prefix_ + "exported_txns_total";
  header(out, name, "counter", "Top-level transactions exported since start.");
  out += name + " " + std::to_string(exported_txns_) + "\n";

  name = prefix_ + "plugin_retries_total";
  header(out, name, "counter", "Plugin calls retried since start, by plugin.");
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

}  // namespace conduit::service
