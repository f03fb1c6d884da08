// Stop modes, stop reasons and the stop cause value (docs/contract.md section 2).
#pragma once

#include <chrono>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

namespace conduit {

enum class StopMode {
  now,           // abandon uncommitted rounds, cancel the exporter call in progress
  end_of_round,  // cancel the importer's fetch, drain every delivered round
};

enum class StopReason {
  none,  // still running
  stop_requested,
  importer_error,
  processor_error,
  exporter_error,
  checkpoint_error,
  internal_error,
};

std::string_view to_string(StopMode mode);
std::optional<StopMode> parse_stop_mode(std::string_view text);
std::string_view to_string(StopReason reason);
std::optional<StopReason> parse_stop_reason(std::string_view text);

// Why a pipeline stopped. A value, not a log line: callers branch on `reason`
// (and `mode`, `origin`); `detail` is the human text, built once with the value.
struct StopCause {
  StopReason reason = StopReason::none;
  std::string detail;
  // For stop_requested: the mode in force at the end (`now` once escalated) and
  // who asked first ("SIGTERM from pid 1", "D-Bus caller :1.4", ...).
  std::optional<StopMode> mode;
  std::string origin;

  // `origin` requested a stop in `mode`: detail "<origin> requested stop (<mode>)".
  static StopCause requested(StopMode mode, const std::string& origin);
  // An unexpected stop.
  static StopCause failure(StopReason reason, const std::string& detail);
  // An end-of-round stop escalated to `now` by `why` (a second request, stop-timeout).
  void escalate(const std::string& why);

  bool expected() const { return reason == StopReason::stop_requested; }
  // Process exit status for this cause (docs/contract.md section 2).
  int exit_code() const { return reason == StopReason::stop_requested ? 0 : 1; }
};

// Pipeline and service states, as exposed on D-Bus (docs/contract.md section 5).
enum class State { starting, running, stopping, reloading, stopped };
std::string_view to_string(State state);

// Sleeps for `delay` unless `stop` fires first (a retry's wait). Returns false
// when stopped.
bool interruptible_sleep(std::chrono::nanoseconds delay, std::stop_token stop);

}  // namespace conduit
