// The foreground progress line: on a terminal, one line at the bottom of
// stderr that is rewritten every second (round, rate, lag behind the
// importer), with log lines scrolling above it. Not used for the journal,
// a log-file or a pipe, which get plain log lines.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>

#include "core/log.hpp"
#include "core/supervisor.hpp"

namespace conduit::service {

// A StreamSink for a terminal that keeps a status line below the log lines.
class TerminalSink final : public LogSink {
 public:
  explicit TerminalSink(std::FILE* stream) : stream_(stream), lines_(stream) {}
  void write(LogLevel level, std::string_view message, const LogFields& fields) override;
  // Replaces the status line.
  void set_status(const std::string& text);
  // Erases the status line for good (before the final log lines).
  void finish();

 private:
  void erase_locked();
  std::mutex mutex_;  // write() also runs under the Logger's mutex: always taken second
  std::FILE* stream_;
  StreamSink lines_;
  std::string status_;
  bool finished_ = false;
};

// Collects progress from the observer hooks; tick() (once a second, on the
// loop thread) draws it.
class ProgressLine final : public Observer {
 public:
  explicit ProgressLine(TerminalSink& sink) : sink_(sink) {}
  void on_state(State state) override { state_ = state; }
  void on_exported(uint64_t round, std::size_t txn_count) override;
  void on_plugin_time(PluginKind kind, const std::string& plugin, uint64_t round,
                      std::chrono::nanoseconds elapsed) override;
  void tick();
  // The text for the given figures (exposed for tests).
  static std::string format(State state, std::optional<uint64_t> exported,
                            std::optional<uint64_t> imported, double rounds_per_second,
                            double txns_per_second);

 private:
  TerminalSink& sink_;
  std::atomic<State> state_{State::starting};
  std::atomic<bool> exported_any_{false};
  std::atomic<uint64_t> last_exported_{0};
  std::atomic<bool> imported_any_{false};
  std::atomic<uint64_t> last_imported_{0};
  std::atomic<uint64_t> rounds_{0};
  std::atomic<uint64_t> txns_{0};
  std::chrono::steady_clock::time_point last_tick_ = std::chrono::steady_clock::now();
};

}  // namespace conduit::service
