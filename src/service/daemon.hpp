// `conduit [-d DIR]`: wires the Supervisor to the service adapters and runs it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace conduit::service {

enum class BusMode { automatic, system, session, none };

struct DaemonOptions {
  std::filesystem::path data_dir;
  std::optional<uint64_t> next_round_override;
  BusMode bus = BusMode::automatic;
};

// Returns the process exit code (CONTRACT section 2).
int run_daemon(const DaemonOptions& options);

}  // namespace conduit::service
