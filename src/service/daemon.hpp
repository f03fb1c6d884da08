// `conduit [-d DIR]`: wires the Supervisor to the service adapters and runs it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "service/bus_names.hpp"

namespace conduit {
class Registry;
}

namespace conduit::service {

struct DaemonOptions {
  std::filesystem::path data_dir;
  std::optional<uint64_t> next_round_override;
  BusMode bus = BusMode::automatic;
};

// Runs conduit with the plugins of `registry`; returns the process exit code.
int run_daemon(const DaemonOptions& options, const Registry& registry);

}  // namespace conduit::service
