#include "core/config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

namespace conduit {
namespace {

using namespace std::chrono_literals;

std::string location(const std::string& file, const toml::source_region& region) {
  if (region.begin.line == 0) return file;
  return file + ":" + std::to_string(region.begin.line) + ":" + std::to_string(region.begin.column);
}

const toml::table* as_table(const void* p) {
  return static_cast<const toml::table*>(p);
}

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date/time";
  }
}

}  // namespace

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  // Go's time.ParseDuration grammar, without the sign: [0-9.]+unit, repeated.
  if (text == "0") return 0ns;
  if (text.empty()) return std::nullopt;
  long double total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i) return std::nullopt;
    std::string number(text.substr(start, i - start));
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".") return std::nullopt;
    size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.')
      ++i;
    std::string_view unit = text.substr(unit_start, i - unit_start);
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us" || unit == "\u00b5s")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return std::nullopt;
    total += std::stold(number) * scale;
  }
  if (total > 9.2e18L) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(total)));
}

std::string format_duration(std::chrono::nanoseconds d) {
  auto ns = d.count();
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

// ---------------------------------------------------------------------------
// PluginConfig

PluginConfig::PluginConfig() {
  static const auto empty = std::make_shared<const toml::table>();
  document_ = empty;
  table_ = empty.get();
}

PluginConfig::PluginConfig(std::shared_ptr<const void> document, const void* table,
                           std::string file, std::string section)
    : document_(std::move(document)),
      table_(table),
      file_(std::move(file)),
      section_(std::move(section)) {}

bool PluginConfig::contains(std::string_view key) const {
  return as_table(table_)->contains(key);
}

const void* PluginConfig::lookup(std::string_view key) {
  const toml::node* node = as_table(table_)->get(key);
  if (node && std::find(used_.begin(), used_.end(), key) == used_.end()) used_.emplace_back(key);
  return node;
}

std::string PluginConfig::where(std::string_view key) const {
  if (!key.empty())
    if (const toml::node* node = as_table(table_)->get(key)) return location(file_, node->source());
  return location(file_, as_table(table_)->source());
}

void PluginConfig::fail(std::string_view key, const std::string& message) const {
  std::string name = section_.empty() ? std::string(key)
                     : key.empty()    ? section_
                                      : section_ + "." + std::string(key);
  throw ConfigError(where(key) + ": " + name + ": " + message);
}

std::string PluginConfig::get_string(std::string_view key, std::string fallback) {
  auto value = get_optional_string(key);
  return value ? *value : std::move(fallback);
}

std::optional<std::string> PluginConfig::get_optional_string(std::string_view key) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return std::nullopt;
  if (auto s = node->value<std::string>(); s && node->is_string()) return *s;
  fail(key, "expected a string, found " + std::string(type_name(*node)));
}

uint64_t PluginConfig::get_uint(std::string_view key, uint64_t fallback) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return fallback;
  if (!node->is_integer()) fail(key, "expected an integer, found " + std::string(type_name(*node)));
  int64_t v = node->as_integer()->get();
  if (v < 0) fail(key, "must not be negative");
  return static_cast<uint64_t>(v);
}

int64_t PluginConfig::get_int(std::string_view key, int64_t fallback) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return fallback;
  if (!node->is_integer()) fail(key, "expected an integer, found " + std::string(type_name(*node)));
  return node->as_integer()->get();
}

bool PluginConfig::get_bool(std::string_view key, bool fallback) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return fallback;
  if (!node->is_boolean())
    fail(key, "expected true or false, found " + std::string(type_name(*node)));
  return node->as_boolean()->get();
}

std::chrono::nanoseconds PluginConfig::get_duration(std::string_view key,
                                                    std::chrono::nanoseconds fallback) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return fallback;
  if (!node->is_string())
    fail(key, "expected a duration string such as \"1s\" or \"250ms\", found " +
                  std::string(type_name(*node)));
  const std::string& text = node->as_string()->get();
  auto d = parse_duration(text);
  if (!d) fail(key, "invalid duration \"" + text + "\" (use e.g. \"1s\", \"250ms\", \"1m30s\")");
  return *d;
}

std::vector<std::string> PluginConfig::get_string_list(std::string_view key) {
  std::vector<std::string> out;
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return out;
  auto* array = node->as_array();
  if (!array) fail(key, "expected an array of strings, found " + std::string(type_name(*node)));
  for (const auto& element : *array) {
    if (!element.is_string()) fail(key, "expected an array of strings");
    out.push_back(element.as_string()->get());
  }
  return out;
}

std::vector<PluginConfig> PluginConfig::get_table_list(std::string_view key) {
  std::vector<PluginConfig> out;
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return out;
  auto* array = node->as_array();
  if (!array) fail(key, "expected an array of tables, found " + std::string(type_name(*node)));
  size_t index = 0;
  for (const auto& element : *array) {
    std::string name = (section_.empty() ? "" : section_ + ".") + std::string(key) + "[" +
                       std::to_string(index++) + "]";
    if (!element.is_table())
      throw ConfigError(location(file_, element.source()) + ": " + name +
                        ": expected a table, found " + std::string(type_name(element)));
    out.emplace_back(document_, element.as_table(), file_, name);
  }
  return out;
}

std::optional<PluginConfig> PluginConfig::get_table(std::string_view key) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return std::nullopt;
  if (!node->is_table()) fail(key, "expected a table, found " + std::string(type_name(*node)));
  return PluginConfig(document_, node->as_table(), file_,
                      (section_.empty() ? "" : section_ + ".") + std::string(key));
}

std::optional<std::string> PluginConfig::get_scalar_text(std::string_view key) {
  auto* node = static_cast<const toml::node*>(lookup(key));
  if (!node) return std::nullopt;
  if (node->is_string()) return node->as_string()->get();
  if (node->is_integer()) return std::to_string(node->as_integer()->get());
  if (node->is_boolean()) return node->as_boolean()->get() ? "true" : "false";
  if (node->is_floating_point()) {
    std::ostringstream out;
    out << node->as_floating_point()->get();
    return out.str();
  }
  fail(key, "expected a string or number, found " + std::string(type_name(*node)));
}

void PluginConfig::finish() const {
  for (auto&& [key, node] : *as_table(table_)) {
    if (std::find(used_.begin(), used_.end(), key.str()) != used_.end()) continue;
    std::string name =
        section_.empty() ? std::string(key.str()) : section_ + "." + std::string(key.str());
    throw ConfigError(location(file_, key.source()) + ": unknown key '" + name + "'");
  }
}

// ---------------------------------------------------------------------------
// conduit.toml

namespace {

PluginSpec read_plugin(PluginConfig& section, std::string kind, const std::string& file,
                       const std::shared_ptr<const void>& document) {
  PluginSpec spec;
  spec.kind = std::move(kind);
  spec.location = section.where("name");
  auto name = section.get_optional_string("name");
  if (!name || name->empty()) section.fail("name", "a plugin name is required");
  spec.name = *name;
  if (auto config = section.get_table("config")) {
    spec.config = std::move(*config);
  } else {
    static const auto empty = std::make_shared<const toml::table>();
    spec.config = PluginConfig(empty, empty.get(), file, section.section() + ".config");
  }
  (void)document;
  section.finish();
  return spec;
}

}  // namespace

Config parse_config(std::string_view text, const std::filesystem::path& data_dir,
                    const std::string& file_name) {
  std::shared_ptr<toml::table> document;
  try {
    document = std::make_shared<toml::table>(toml::parse(text, file_name));
  } catch (const toml::parse_error& e) {
    throw ConfigError(location(file_name, e.source()) + ": " + std::string(e.description()));
  }
  PluginConfig top(document, document.get(), file_name, "");

  Config config;
  config.data_dir = data_dir;
  config.file = data_dir / "conduit.toml";

  std::string level = top.get_string("log-level", "info");
  auto parsed_level = parse_log_level(level);
  if (!parsed_level)
    top.fail("log-level", "unknown level \"" + level + "\" (use error, warn, info, debug, trace)");
  config.log_level = *parsed_level;
  config.log_file = top.get_string("log-file", "");
  config.retry_count = top.get_uint("retry-count", config.retry_count);
  config.retry_delay = top.get_duration("retry-delay", config.retry_delay);
  config.stop_timeout = top.get_duration("stop-timeout", config.stop_timeout);
  if (config.stop_timeout.count() == 0) top.fail("stop-timeout", "must be greater than zero");
  config.group_commit_rounds = top.get_uint("group-commit-rounds", config.group_commit_rounds);
  if (config.group_commit_rounds == 0)
    top.fail("group-commit-rounds", "must be at least 1 (1 commits every round alone)");
  config.group_commit_bytes = top.get_uint("group-commit-bytes", config.group_commit_bytes);
  config.group_commit_latency =
      top.get_duration("group-commit-latency", config.group_commit_latency);
  std::string pid_file = top.get_string("pid-file", "");
  config.pid_file = pid_file.empty() ? data_dir / "conduit.pid" : std::filesystem::path(pid_file);
  if (config.pid_file.is_relative()) config.pid_file = data_dir / config.pid_file;
  if (!config.log_file.empty() && std::filesystem::path(config.log_file).is_relative())
    config.log_file = (data_dir / config.log_file).string();
  config.hide_banner = top.get_bool("hide-banner", false);

  // "host:port", ":port" or "[v6]:port", as Go's net.Listen takes them.
  auto check_listen_address = [](PluginConfig& table, const std::string& addr) {
    auto colon = addr.rfind(':');
    std::string port = colon == std::string::npos ? "" : addr.substr(colon + 1);
    bool digits = !port.empty() && port.size() <= 5 &&
                  port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(port) > 65535)
      table.fail("addr", "expected host:port, :port or [v6]:port, not \"" + addr + "\"");
  };
  if (auto api = top.get_table("api")) {
    config.api.addr = api->get_string("addr", "");
    if (!config.api.addr.empty()) check_listen_address(*api, config.api.addr);
    api->finish();
  }
  if (auto metrics = top.get_table("metrics")) {
    config.metrics.mode = metrics->get_string("mode", config.metrics.mode);
    std::string upper = config.metrics.mode;
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    if (upper != "ON" && upper != "OFF") metrics->fail("mode", "expected \"ON\" or \"OFF\"");
    config.metrics.mode = upper;
    config.metrics.addr = metrics->get_string("addr", config.metrics.addr);
    config.metrics.prefix = metrics->get_string("prefix", config.metrics.prefix);
    if (config.metrics.mode == "ON") check_listen_address(*metrics, config.metrics.addr);
    for (char c : config.metrics.prefix)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        metrics->fail("prefix", "a Prometheus name prefix: letters, digits and '_' only");
    metrics->finish();
  }

  auto importer = top.get_table("importer");
  if (!importer) top.fail("", "missing [importer] section");
  config.importer = read_plugin(*importer, "importer", file_name, document);
  for (auto& processor : top.get_table_list("processors"))
    config.processors.push_back(read_plugin(processor, "processor", file_name, document));
  auto exporter = top.get_table("exporter");
  if (!exporter) top.fail("", "missing [exporter] section");
  config.exporter = read_plugin(*exporter, "exporter", file_name, document);

  top.finish();
  return config;
}

Config load_config(const std::filesystem::path& data_dir) {
  auto file = data_dir / "conduit.toml";
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError(file.string() + ": cannot read the configuration: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), data_dir, file.string());
}

}  // namespace conduit
