#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace conduit::cli {

struct InitOptions {
  std::filesystem::path data_dir;
  std::string importer = "generator";
  std::vector<std::string> processors{"noop"};
  std::string exporter = "file_writer";  // blocks go to DIR/exporter_file_writer/
  bool force = false;
};
int cmd_init(const InitOptions& options);
int cmd_list(const std::string& which);

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
