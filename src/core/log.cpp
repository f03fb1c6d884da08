#include "core/log.hpp"

#include <sys/time.h>
#include <array>
#include <cstdio>
#include <ctime>

namespace conduit {

namespace {
constexpr std::array<std::string_view, 5> kLevelNames{"error", "warn", "info", "debug", "trace"};
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
  for (size_t i = 0; i < kLevelNames.size(); ++i)
    if (kLevelNames[i] == text) return static_cast<LogLevel>(i);
  if (text == "warning") return LogLevel::warn;
  return std::nullopt;
}

std::string_view to_string(LogLevel level) {
  return kLevelNames[static_cast<size_t>(level)];
}

StreamSink::~StreamSink() {
  if (owns_ && stream_) std::fclose(stream_);
}

void StreamSink::write(LogLevel level, std::string_view message, const LogFields& fields) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm local{};
  localtime_r(&tv.tv_sec, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &local);
  std::fprintf(stream_, "%s.%03ld %-5s %.*s", stamp, static_cast<long>(tv.tv_usec / 1000),
               to_string(level).data(), static_cast<int>(message.size()), message.data());
  if (fields.round)
    std::fprintf(stream_, " round=%llu", static_cast<unsigned long long>(*fields.round));
  if (!fields.plugin.empty()) std::fprintf(stream_, " plugin=%s", fields.plugin.c_str());
  if (!fields.stop_reason.empty())
    std::fprintf(stream_, " stop-reason=%s", fields.stop_reason.c_str());
  std::fputc('\n', stream_);
  std::fflush(stream_);
}

Logger::Logger(std::unique_ptr<LogSink> sink, LogLevel level)
    : sink_(sink ? std::move(sink) : std::make_unique<StreamSink>(stderr)), level_(level) {}

void Logger::set_level(LogLevel level) {
  std::lock_guard lock(mutex_);
  level_ = level;
}

void Logger::set_sink(std::unique_ptr<LogSink> sink) {
  std::lock_guard lock(mutex_);
  sink_ = std::move(sink);
}

bool Logger::enabled(LogLevel level) const {
  std::lock_guard lock(mutex_);
  return level <= level_;
}

void Logger::log(LogLevel level, std::string_view message, const LogFields& fields) {
  std::lock_guard lock(mutex_);
  // Catalogued messages (the final stop entry) are always written.
  if (level > level_ && fields.message_id.empty()) return;
  sink_->write(level, message, fields);
}

void Logger::status(std::string_view message, const LogFields& fields) {
  log(LogLevel::info, message, fields);
  std::function<void(std::string_view)> listener;
  {
    std::lock_guard lock(mutex_);
    listener = status_listener_;
  }
  if (listener) listener(message);
}

void Logger::set_status_listener(std::function<void(std::string_view)> listener) {
  std::lock_guard lock(mutex_);
  status_listener_ = std::move(listener);
}

}  // namespace conduit
