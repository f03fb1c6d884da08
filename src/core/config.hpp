// conduit.toml (docs/contract.md section 4) parsed into typed structs. tomlplusplus stays
// inside config.cpp; plugins read their own section through PluginConfig, which
// reports unknown keys and wrong types with file, line and column.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/log.hpp"

namespace conduit {

// A configuration or usage error: exit code 2 before any plugin runs.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& message) : std::runtime_error(message) {}
};

// Bounds on what reaches the TOML parser (conduit.toml(5), LIMITS): a larger or
// deeper document is refused with file:line:col before it is parsed.
constexpr size_t kMaxConfigBytes = size_t{1} << 20;
constexpr size_t kMaxConfigNesting = 64;

// Parses Go-style durations: "1s", "250ms", "1m30s", "1.5h", "0".
std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text);
std::string format_duration(std::chrono::nanoseconds d);

// One plugin's `config` table, with the location of every key. Accessors mark
// keys as used; finish() rejects the rest.
class PluginConfig {
 public:
  struct Node;  // a toml::node plus its owning document
  PluginConfig();
  PluginConfig(std::shared_ptr<const void> document, const void* table, std::string file,
               std::string section);

  const std::string& section() const { return section_; }
  bool contains(std::string_view key) const;

  std::string get_string(std::string_view key, std::string fallback);
  std::optional<std::string> get_optional_string(std::string_view key);
  uint64_t get_uint(std::string_view key, uint64_t fallback);
  int64_t get_int(std::string_view key, int64_t fallback);
  bool get_bool(std::string_view key, bool fallback);
  std::chrono::nanoseconds get_duration(std::string_view key, std::chrono::nanoseconds fallback);
  std::vector<std::string> get_string_list(std::string_view key);
  // An array of tables (`[[a.b]]` or `[ {..}, {..} ]`); each element is its own reader.
  std::vector<PluginConfig> get_table_list(std::string_view key);
  std::optional<PluginConfig> get_table(std::string_view key);
  // A scalar as text whatever its TOML type (for values whose meaning depends on
  // another key, such as a filter expression). Strings are returned unquoted.
  std::optional<std::string> get_scalar_text(std::string_view key);

  // The whole table as JSON text (tables as objects, dates and times as
  // strings), marking every key as read: for a plugin that validates its
  // configuration itself (an external plugin, conduit-plugin(7)).
  std::string to_json_text();
  // The table's keys, in the file's order.
  std::vector<std::string> keys() const;

  // Marks a key as read without reading it (a key accepted for compatibility).
  void ignore(std::string_view key) { lookup(key); }
  // A key Go Conduit accepts that does nothing here: ignored, with a warning
  // (warnings()) that says `why`.
  void accepted_without_effect(std::string_view key, const std::string& why);
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Rejects keys no accessor asked for.
  void finish() const;
  // Throws a ConfigError located at `key` (or at the table when key is empty).
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;
  std::string where(std::string_view key = {}) const;

 private:
  const void* lookup(std::string_view key);
  std::shared_ptr<const void> document_;  // keeps the parsed toml alive
  const void* table_ = nullptr;           // const toml::table*
  std::string file_;
  std::string section_;
  std::vector<std::string> used_;
  std::vector<std::string> warnings_;
};

struct PluginSpec {
  std::string kind;  // "importer", "processor", "exporter"
  std::string name;
  PluginConfig config;
  std::string location;  // "file:line:col" of the plugin's `name`
  // Keys only an external plugin takes (conduit-plugin(7), CONFIGURATION):
  // its extra arguments, its environment and its largest frame payload.
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::optional<uint64_t> max_block_bytes;
  std::string host_keys_location;  // where the first of them is, or empty
};

struct ApiConfig {
  std::string addr;  // empty: no API server
};

struct MetricsConfig {
  std::string mode = "OFF";  // ON or OFF
  std::string addr = ":9999";
  std::string prefix = "conduit";
};

struct Config {
  std::filesystem::path data_dir;
  std::filesystem::path file;  // DIR/conduit.toml
  LogLevel log_level = LogLevel::info;
  std::string log_file;
  uint64_t retry_count = 10;  // 0 = retry forever
  std::chrono::nanoseconds retry_delay = std::chrono::seconds(1);
  std::chrono::nanoseconds stop_timeout = std::chrono::seconds(30);
  // A round call, checkpoint write or close() stuck this long is a wedge (no more
  // watchdog pings); 0 = the unit's watchdog period (WatchdogSec=).
  std::chrono::nanoseconds wedge_timeout{0};
  // Group commit while the importer is ahead (conduit.toml(5)).
  uint64_t group_commit_rounds = 64;
  uint64_t group_commit_bytes = uint64_t{64} << 20;
  std::chrono::nanoseconds group_commit_latency = std::chrono::milliseconds(250);
  std::filesystem::path pid_file;  // resolved: empty in the file means DIR/conduit.pid
  // Directories searched for external plugins after DIR/plugins and the
  // package's directory (conduit-plugin(7)); relative ones against DIR.
  std::vector<std::filesystem::path> plugin_dirs;
  bool hide_banner = false;
  ApiConfig api;
  MetricsConfig metrics;
  PluginSpec importer;
  std::vector<PluginSpec> processors;
  PluginSpec exporter;
  // Keys accepted for Go Conduit compatibility that have no effect, with
  // their location; the daemon logs each at start-up.
  std::vector<std::string> warnings;
};

// A TOML document's top-level table as JSON text (a plugin's config table for
// plugin-check); throws ConfigError naming `file`, line and column.
std::string toml_table_to_json(std::string_view text, const std::string& file);

// Reads and validates DIR/conduit.toml; throws ConfigError naming file, line, column.
// A data dir holding only a Go Conduit conduit.yml is refused with the command
// that converts it.
Config load_config(const std::filesystem::path& data_dir);
// Same, from text (the file name is used in messages only).
Config parse_config(std::string_view text, const std::filesystem::path& data_dir,
                    const std::string& file_name);

}  // namespace conduit
