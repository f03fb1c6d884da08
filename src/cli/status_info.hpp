// What `conduit status` adds to State/NextRound/StopReason: how long the
// process has run and how fast it exports, measured from outside the daemon.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace conduit::cli {

// Seconds since process `pid` started (from /proc), nullopt if it is gone.
std::optional<double> process_uptime_seconds(pid_t pid);

// Rounds per second: reads the checkpoint twice, `interval` apart.
std::optional<double> measure_rate(const std::function<std::optional<uint64_t>()>& next_round,
                                   std::chrono::milliseconds interval);

// "3d 4h", "2h 5m", "4m 7s", "12s".
std::string human_duration(double seconds);

struct RuntimeInfo {
  std::optional<double> uptime_seconds;
  std::optional<double> rounds_per_second;
};
RuntimeInfo runtime_info(pid_t pid, const std::function<std::optional<uint64_t>()>& next_round);

}  // namespace conduit::cli
