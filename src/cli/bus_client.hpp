// `conduit stop` / `conduit status` over D-Bus, through the proxy generated from
// data/dbus/org.conduit.Pipeline.xml. The commands fall back to the PID file
// when no conduit of the requested data dir is on the bus.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "cli/commands.hpp"
#include "core/stop.hpp"

namespace conduit::cli {

struct BusStatus {
  pid_t pid = 0;
  std::string bus;  // "system" or "session"
  std::string name;
  std::string state;
  uint64_t next_round = 0;
  std::string stop_reason;
  std::string stop_detail;
};

// `expected_pid`: the PID holding the data dir's PID file, if known; a service
// on the bus with another PID is some other conduit and is ignored.
std::optional<BusStatus> status_over_bus(const std::string& bus, std::optional<pid_t> expected_pid);

// Stops the conduit on the bus and (unless --no-wait) waits for it to exit.
// nullopt: not on the bus (use the PID file); otherwise the exit code.
// `stop_record` reads the PID file's stop record after the exit, if available.
// The exit code is the stop cause's (StopCause::exit_code), as for a signalled stop.
std::optional<int> stop_over_bus(const StopOptions& options, std::optional<pid_t> expected_pid,
                                 const std::function<std::optional<StopCause>()>& stop_record);

}  // namespace conduit::cli
