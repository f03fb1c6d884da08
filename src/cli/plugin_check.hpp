// `conduit plugin-check`: drives one external plugin through the plugin
// protocol (conduit-plugin(7)) and reports what passed and what failed.
#pragma once

#include <filesystem>

namespace conduit::cli {

struct PluginCheckOptions {
  std::filesystem::path plugin;
  std::filesystem::path config;    // TOML, the plugin's config table; empty: its sample config
  std::filesystem::path fixtures;  // genesis.json and N_block.msgp.gz; empty: none
  bool keep = false;               // keep the temporary data dir
};
// 0: nothing failed; 1: a check failed; 2: usage error.
int cmd_plugin_check(const PluginCheckOptions& options);

}  // namespace conduit::cli
