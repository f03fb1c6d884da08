// External plugins (conduit-plugin(7)): executables found by name, run as
// child processes and driven over the plugin protocol, behind the same
// Importer / Processor / Exporter interfaces as the built-in plugins.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/registry.hpp"
#include "plugins/external/session.hpp"

namespace conduit::plugins::external {

// Where plugins are looked for, in order: DIR/plugins, the package's
// directory, then `plugin-dirs` (relative ones against DIR).
std::vector<std::filesystem::path> search_dirs(const std::filesystem::path& data_dir,
                                               const std::vector<std::filesystem::path>& extra);

// The executable named `name` in `dirs`; nullopt when there is none. A file
// that is there but cannot be run (not executable, a directory) or a name
// that is not a plain file name throws ConfigError naming the path and why.
std::optional<std::filesystem::path> locate(const std::string& name,
                                            const std::vector<std::filesystem::path>& dirs);

// A plugin's own description of itself: runs it, asks hello, closes it.
// Throws ConfigError naming the path and what went wrong.
struct PluginInfo {
  std::string name;
  std::filesystem::path path;
  Hello hello;
};
PluginInfo query(const std::filesystem::path& path);

// Every executable in `dirs` (first one of each name), with its hello; the
// ones that fail to answer are returned in `broken` ("path: why").
struct Discovery {
  std::vector<PluginInfo> plugins;
  std::vector<std::string> broken;
};
Discovery discover(const std::vector<std::filesystem::path>& dirs);

// Host settings of one plugin, from its section of conduit.toml.
struct HostSettings {
  std::string name;
  PluginKind kind = PluginKind::exporter;
  std::filesystem::path path;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  uint64_t max_payload = kDefaultMaxBlockBytes;
  std::filesystem::path working_dir;
  std::chrono::nanoseconds call_timeout{0};  // 0: none
  // For round-request and init, which the pipeline does not retry: a process
  // that fails there is started again as often (retry-count, retry-delay).
  uint64_t retry_count = 10;
  std::chrono::nanoseconds retry_delay = std::chrono::seconds(1);
};

// A plugin instance for `settings`, not yet configured.
std::unique_ptr<Plugin> make_plugin(HostSettings settings);

// Lets `registry` build external plugins for names it has no built-in for.
void register_external(Registry& registry);

}  // namespace conduit::plugins::external
