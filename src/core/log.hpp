// Logging with structured fields. The core logs through a Logger; where the
// lines go (stderr, a file, the journal) is a LogSink chosen by the service layer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace conduit {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };
std::optional<LogLevel> parse_log_level(std::string_view text);
std::string_view to_string(LogLevel level);

// The journal fields of docs/contract.md section 6, where they apply.
struct LogFields {
  std::optional<uint64_t> round;
  std::string plugin;       // e.g. "importer:file_reader"
  std::string stop_reason;  // a StopReason token
  std::string message_id;   // 32 hex digits, for catalogued messages
};

class LogSink {
 public:
  virtual ~LogSink() = default;
  // Called with the logger's mutex held: sinks need no locking of their own.
  virtual void write(LogLevel level, std::string_view message, const LogFields& fields) = 0;
};

// Writes "LEVEL message key=value..." lines to a stream (stderr or a log file).
class StreamSink : public LogSink {
 public:
  explicit StreamSink(std::FILE* stream, bool owns = false) : stream_(stream), owns_(owns) {}
  ~StreamSink() override;
  void write(LogLevel level, std::string_view message, const LogFields& fields) override;

 private:
  std::FILE* stream_;
  bool owns_;
};

class Logger {
 public:
  explicit Logger(std::unique_ptr<LogSink> sink = nullptr, LogLevel level = LogLevel::info);

  void set_level(LogLevel level);
  void set_sink(std::unique_ptr<LogSink> sink);
  bool enabled(LogLevel level) const;
  void log(LogLevel level, std::string_view message, const LogFields& fields = {});

  void error(std::string_view m, const LogFields& f = {}) { log(LogLevel::error, m, f); }
  void warn(std::string_view m, const LogFields& f = {}) { log(LogLevel::warn, m, f); }
  void info(std::string_view m, const LogFields& f = {}) { log(LogLevel::info, m, f); }
  void debug(std::string_view m, const LogFields& f = {}) { log(LogLevel::debug, m, f); }

  // Progress of a long plugin step (an algod fast catchup): logged at info
  // and passed to the status listener, which the service turns into STATUS=.
  void status(std::string_view m, const LogFields& f = {});
  void set_status_listener(std::function<void(std::string_view)> listener);

 private:
  mutable std::mutex mutex_;
  std::unique_ptr<LogSink> sink_;
  LogLevel level_;
  std::function<void(std::string_view)> status_listener_;
};

}  // namespace conduit
