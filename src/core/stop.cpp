#include "core/stop.hpp"

#include <array>
#include <condition_variable>
#include <mutex>
#include <utility>

namespace conduit {
namespace {

constexpr std::array<std::pair<StopReason, std::string_view>, 7> kReasonTokens{{
    {StopReason::none, ""},
    {StopReason::stop_requested, "stop-requested"},
    {StopReason::importer_error, "importer-error"},
    {StopReason::processor_error, "processor-error"},
    {StopReason::exporter_error, "exporter-error"},
    {StopReason::checkpoint_error, "checkpoint-error"},
    {StopReason::internal_error, "internal-error"},
}};

}  // namespace

std::string_view to_string(StopMode mode) {
  return mode == StopMode::now ? "now" : "end-of-round";
}

std::optional<StopMode> parse_stop_mode(std::string_view text) {
  if (text == "now") return StopMode::now;
  if (text == "end-of-round") return StopMode::end_of_round;
  return std::nullopt;
}

std::string_view to_string(StopReason reason) {
  for (const auto& [value, token] : kReasonTokens)
    if (value == reason) return token;
  return "internal-error";
}

std::optional<StopReason> parse_stop_reason(std::string_view text) {
  for (const auto& [value, token] : kReasonTokens)
    if (token == text) return value;
  return std::nullopt;
}

StopCause StopCause::requested(StopMode mode, const std::string& origin) {
  StopCause cause;
  cause.reason = StopReason::stop_requested;
  cause.mode = mode;
  cause.origin = origin;
  cause.detail = origin + " requested stop (" + std::string(to_string(mode)) + ")";
  return cause;
}

StopCause StopCause::failure(StopReason reason, const std::string& detail) {
  StopCause cause;
  cause.reason = reason;
  cause.detail = detail;
  return cause;
}

void StopCause::escalate(const std::string& why) {
  if (reason != StopReason::stop_requested || mode == StopMode::now) return;
  mode = StopMode::now;
  detail += "; escalated to now by " + why;
}

std::string_view to_string(State state) {
  switch (state) {
    case State::starting:
      return "starting";
    case State::running:
      return "running";
    case State::stopping:
      return "stopping";
    case State::reloading:
      return "reloading";
    case State::stopped:
      return "stopped";
  }
  return "stopped";
}

bool interruptible_sleep(std::chrono::nanoseconds delay, std::stop_token stop) {
  std::mutex mutex;
  std::condition_variable_any cv;
  std::unique_lock lock(mutex);
  return !cv.wait_for(lock, stop, delay, [] { return false; }) && !stop.stop_requested();
}

}  // namespace conduit
