#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace conduit::cli {

// Go Conduit's defaults: algod importer, no processors, file_writer exporter
// (blocks go to DIR/exporter_file_writer/).
struct InitOptions {
  std::filesystem::path data_dir;  // empty: the configuration goes to stdout; DIR/plugins
  std::string importer = "algod";
  std::vector<std::string> processors;
  std::string exporter = "file_writer";
  std::filesystem::path from_yaml;  // convert this Go conduit.yml instead
  bool force = false;
};
int cmd_init(const InitOptions& options);
// which: importers/processors/exporters or singular, empty for all; name: one plugin.
// External plugins are looked for in data_dir/plugins too.
int cmd_list(const std::string& which, const std::string& name = {},
             const std::filesystem::path& data_dir = {});

struct StopOptions {
  std::string mode = "now";
  std::filesystem::path data_dir;
  std::filesystem::path pid_file;
  std::string bus;
  bool no_wait = false;
  double timeout_seconds = 0;  // 0 = wait as long as it takes
};
int cmd_stop(const StopOptions& options);

struct StatusOptions {
  std::filesystem::path data_dir;
  std::string bus;
  bool json = false;
};
int cmd_status(const StatusOptions& options);

}  // namespace conduit::cli
