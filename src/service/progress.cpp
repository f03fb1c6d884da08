#include "service/progress.hpp"

namespace conduit::service {

void TerminalSink::erase_locked() {
  if (!status_.empty()) std::fputs("\r\033[K", stream_);
}

void TerminalSink::write(LogLevel level, std::string_view message, const LogFields& fields) {
  std::lock_guard lock(mutex_);
  erase_locked();
  lines_.write(level, message, fields);
  if (!status_.empty()) std::fputs(status_.c_str(), stream_);
  std::fflush(stream_);
}

void TerminalSink::set_status(const std::string& text) {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  erase_locked();
  status_ = text;
  std::fputs(status_.c_str(), stream_);
  std::fflush(stream_);
}

void TerminalSink::finish() {
  std::lock_guard lock(mutex_);
  erase_locked();
  status_.clear();
  finished_ = true;
  std::fflush(stream_);
}

void ProgressLine::on_exported(uint64_t round, std::size_t txn_count) {
  last_exported_ = round;
  exported_any_ = true;
  rounds_.fetch_add(1);
  txns_.fetch_add(txn_count);
}

void ProgressLine::on_plugin_time(PluginKind kind, const std::string&, uint64_t round,
                                  std::chrono::nanoseconds) {
  if (kind != PluginKind::importer) return;
  last_imported_ = round;
  imported_any_ = true;
}

std::string ProgressLine::format(State state, std::optional<uint64_t> exported,
                                 std::optional<uint64_t> imported, double rounds_per_second,
                                 double txns_per_second) {
  char buffer[256];
  if (!exported) {
    std::snprintf(buffer, sizeof buffer, "%s: no round exported yet",
                  std::string(to_string(state)).c_str());
    return buffer;
  }
  std::string text;
  std::snprintf(buffer, sizeof buffer, "%s: round %llu | %.1f rounds/s | %.0f txn/s",
                std::string(to_string(state)).c_str(), static_cast<unsigned long long>(*exported),
                rounds_per_second, txns_per_second);
  text = buffer;
  // Rounds the importer has fetched that the exporter has not committed yet.
  if (imported && *imported >= *exported) {
    std::snprintf(buffer, sizeof buffer, " | lag %llu",
                  static_cast<unsigned long long>(*imported - *exported));
    text += buffer;
  }
  return text;
}

void ProgressLine::tick() {
  auto now = std::chrono::steady_clock::now();
  double seconds = std::chrono::duration<double>(now - last_tick_).count();
  last_tick_ = now;
  if (seconds <= 0) seconds = 1;
  double rounds = static_cast<double>(rounds_.exchange(0));
  double txns = static_cast<double>(txns_.exchange(0));
  std::optional<uint64_t> exported, imported;
  if (exported_any_) exported = last_exported_.load();
  if (imported_any_) imported = last_imported_.load();
  sink_.set_status(format(state_.load(), exported, imported, rounds / seconds, txns / seconds));
}

}  // namespace conduit::service
