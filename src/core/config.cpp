#include "core/config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/fs.hpp"

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

// toml++ builds nested tables recursively, so a deep enough document (50,000
// `[a.a.a...]` components, dotted keys or inline tables) exhausts the stack.
// This linear pre-scan measures the nesting every construct adds (table header
// components, dotted key components, inline tables, arrays) without recursing,
// so nothing deeper than kMaxConfigNesting reaches the parser. It skips strings
// and comments as the parser does; malformed text is left for the parser to report.
class NestingScanner {
 public:
  NestingScanner(std::string_view text, const std::string& file_name)
      : text_(text), file_(file_name) {}

  void run() {
    while (i_ < text_.size()) {
      char c = text_[i_];
      if (c == '"' || c == '\'') {
        if (mode_ == Mode::key) key_components_ = std::max<size_t>(key_components_, 1);
        skip_string();
      } else if (c == '#') {
        while (i_ < text_.size() && text_[i_] != '\n') advance();
      } else if (mode_ == Mode::key) {
        key_char(c);
      } else {
        value_char(c);
      }
    }
  }

 private:
  struct Frame {
    char open;     // '[' (array) or '{' (inline table)
    size_t depth;  // nesting of the array or inline table itself
  };
  enum class Mode { key, value };

  void advance() {
    if (text_[i_] == '\n') {
      ++line_;
      column_ = 1;
    } else if ((static_cast<unsigned char>(text_[i_]) & 0xC0) != 0x80) {
      ++column_;  // columns count characters, not UTF-8 continuation bytes
    }
    ++i_;
  }

  void check(size_t depth) const {
    if (depth <= kMaxConfigNesting) return;
    throw ConfigError(file_ + ":" + std::to_string(line_) + ":" + std::to_string(column_) +
                      ": nested more than " + std::to_string(kMaxConfigNesting) +
                      " levels deep (tables, dotted keys, inline tables and arrays all count)");
  }

  size_t quote_run(char quote) const {
    size_t n = 0;
    while (i_ + n < text_.size() && text_[i_ + n] == quote) ++n;
    return n;
  }

  // A string starting at text_[i_]. A multi-line string ends at the last three
  // quotes of a run of three to five, as TOML says (up to two belong to the string).
  void skip_string() {
    char quote = text_[i_];
    size_t opening = quote_run(quote);
    if (opening == 2) {  // an empty string
      advance();
      advance();
      return;
    }
    bool multi = opening >= 3;
    for (int k = 0; k < (multi ? 3 : 1); ++k) advance();
    while (i_ < text_.size()) {
      char c = text_[i_];
      if (quote == '"' && c == '\\') {
        advance();
        if (i_ < text_.size()) advance();
      } else if (c == quote) {
        size_t run = multi ? quote_run(quote) : 1;
        if (!multi || run >= 3) {
          for (size_t k = 0; k < std::min<size_t>(run, 5); ++k) advance();
          return;
        }
        for (size_t k = 0; k < run; ++k) advance();
      } else if (c == '\n' && !multi) {
        return;  // unterminated: the parser reports it
      } else {
        advance();
      }
    }
  }

  void key_char(char c) {
    if (c == '\n') key_components_ = 0;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',') {
      advance();
    } else if (c == '[' && frames_.empty() && key_components_ == 0) {
      table_header();
    } else if (c == '}' && !frames_.empty()) {  // `{}` or a trailing `}`
      frames_.pop_back();
      mode_ = Mode::value;
      advance();
    } else if (c == '=') {
      size_t base = frames_.empty() ? header_depth_ : frames_.back().depth;
      value_base_ = base + std::max<size_t>(key_components_, 1);
      check(value_base_);
      key_components_ = 0;
      mode_ = Mode::value;
      advance();
    } else {
      if (key_components_ == 0) key_components_ = 1;
      if (c == '.') check(++key_components_);
      advance();
    }
  }

  // `[a.b]` or `[[a.b]]` (an array of tables nests one level more).
  void table_header() {
    size_t depth = 1;
    advance();
    bool array = i_ < text_.size() && text_[i_] == '[';
    if (array) {
      ++depth;
      advance();
    }
    while (i_ < text_.size() && text_[i_] != ']' && text_[i_] != '\n') {
      if (text_[i_] == '"' || text_[i_] == '\'') {
        skip_string();
        continue;
      }
      if (text_[i_] == '.') check(++depth);
      advance();
    }
    check(depth);
    for (int k = 0; k < (array ? 2 : 1) && i_ < text_.size() && text_[i_] == ']'; ++k) advance();
    header_depth_ = depth;
  }

  void value_char(char c) {
    if (c == '[' || c == '{') {
      size_t outer =
          frames_.empty() || frames_.back().open == '{' ? value_base_ : frames_.back().depth;
      check(outer + 1);
      frames_.push_back({c, outer + 1});
      if (c == '{') mode_ = Mode::key;
    } else if (c == ']' || c == '}') {
      if (!frames_.empty()) frames_.pop_back();
    } else if (c == ',' && !frames_.empty() && frames_.back().open == '{') {
      mode_ = Mode::key;
    } else if (c == '\n' && frames_.empty()) {
      mode_ = Mode::key;
    }
    advance();
  }

  std::string_view text_;
  const std::string& file_;
  size_t i_ = 0;
  size_t line_ = 1;
  size_t column_ = 1;
  std::vector<Frame> frames_;  // open arrays and inline tables of the current value
  Mode mode_ = Mode::key;
  size_t header_depth_ = 0;    // components of the last [table] header
  size_t key_components_ = 0;  // components of the key being read
  size_t value_base_ = 0;      // depth of the value after the last '='
};

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

void PluginConfig::accepted_without_effect(std::string_view key, const std::string& why) {
  if (!contains(key)) return;
  ignore(key);
  std::string name = section_.empty() ? std::string(key) : section_ + "." + std::string(key);
  warnings_.push_back(where(key) + ": " + name + " has no effect in conduit (" + why + ")");
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
  throw ConfigError(where(key) + ": " + (name.empty() ? "" : name + ": ") + message);
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

std::string PluginConfig::to_json_text() {
  for (auto&& [key, node] : *as_table(table_)) used_.emplace_back(key.str());
  std::ostringstream out;
  out << toml::json_formatter{*as_table(table_)};
  return out.str();
}

std::vector<std::string> PluginConfig::keys() const {
  std::vector<std::string> out;
  for (auto&& [key, node] : *as_table(table_)) out.emplace_back(key.str());
  return out;
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

// The keys of a plugin section that only an external plugin takes; whether
// the plugin is one is known only when the plugins are built.
void read_host_keys(PluginConfig& section, PluginSpec& spec) {
  for (const char* key : {"args", "env", "max-block-bytes"})
    if (section.contains(key) && spec.host_keys_location.empty())
      spec.host_keys_location = section.where(key) + ": " + key;
  spec.args = section.get_string_list("args");
  if (auto env = section.get_table("env")) {
    for (const auto& key : env->keys()) {
      if (key.empty() || key.find('=') != std::string::npos)
        env->fail(key, "an environment variable name must be non-empty and without '='");
      auto value = env->get_string(key, "");
      if (value.find('\0') != std::string::npos)
        env->fail(key, "an environment value cannot hold a NUL character");
      spec.env.emplace_back(key, std::move(value));
    }
    env->finish();
  }
  if (section.contains("max-block-bytes")) {
    spec.max_block_bytes = section.get_uint("max-block-bytes", 0);
    if (*spec.max_block_bytes == 0) section.fail("max-block-bytes", "must be positive");
  }
  for (const auto& arg : spec.args)
    if (arg.find('\0') != std::string::npos)
      section.fail("args", "an argument cannot hold a NUL character");
}

PluginSpec read_plugin(PluginConfig& section, std::string kind, const std::string& file,
                       const std::shared_ptr<const void>& document) {
  PluginSpec spec;
  spec.kind = std::move(kind);
  spec.location = section.where("name");
  auto name = section.get_optional_string("name");
  if (!name || name->empty()) section.fail("name", "a plugin name is required");
  spec.name = *name;
  read_host_keys(section, spec);
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

std::shared_ptr<toml::table> parse_document(std::string_view text, const std::string& file_name) {
  if (text.size() > kMaxConfigBytes)
    throw ConfigError(file_name + ": " + std::to_string(text.size()) + " bytes; at most " +
                      std::to_string(kMaxConfigBytes) + " are accepted");
  NestingScanner(text, file_name).run();
  try {
    return std::make_shared<toml::table>(toml::parse(text, file_name));
  } catch (const toml::parse_error& e) {
    throw ConfigError(location(file_name, e.source()) + ": " + std::string(e.description()));
  }
}

LogLevel read_log_level(PluginConfig& top) {
  // Go (logrus) takes the level in any case, and panic and fatal, which log
  // what error logs here (conduit has no panic or fatal messages).
  std::string level = top.get_string("log-level", "info");
  std::string lower = level;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto parsed_level = lower == "panic" || lower == "fatal" ? std::optional(LogLevel::error)
                                                           : parse_log_level(lower);
  if (!parsed_level)
    top.fail("log-level", "unknown level \"" + level +
                              "\" (use error, warn, info, debug, trace; or Go's panic, fatal)");
  return *parsed_level;
}

void read_global_keys(PluginConfig& top, Config& config) {
  const auto& data_dir = config.data_dir;
  config.log_file = top.get_string("log-file", "");
  config.retry_count = top.get_uint("retry-count", config.retry_count);
  config.retry_delay = top.get_duration("retry-delay", config.retry_delay);
  config.stop_timeout = top.get_duration("stop-timeout", config.stop_timeout);
  if (config.stop_timeout.count() == 0) top.fail("stop-timeout", "must be greater than zero");
  config.wedge_timeout = top.get_duration("wedge-timeout", config.wedge_timeout);
  // Go Conduit's name for it is pid-filepath; one of the two.
  if (top.contains("pid-file") && top.contains("pid-filepath"))
    top.fail("pid-filepath", "pid-filepath is Go Conduit's name for pid-file: give only one");
  std::string pid_file = top.contains("pid-filepath") ? top.get_string("pid-filepath", "")
                                                      : top.get_string("pid-file", "");
  // Relative to the data dir, joined once (a relative -d made it DIR/DIR/conduit.pid).
  config.pid_file = data_dir / (pid_file.empty() ? "conduit.pid" : pid_file);
  config.group_commit_rounds = top.get_uint("group-commit-rounds", config.group_commit_rounds);
  if (config.group_commit_rounds == 0)
    top.fail("group-commit-rounds", "must be at least 1 (1 commits every round alone)");
  config.group_commit_bytes = top.get_uint("group-commit-bytes", config.group_commit_bytes);
  config.group_commit_latency =
      top.get_duration("group-commit-latency", config.group_commit_latency);
  if (!config.log_file.empty() && std::filesystem::path(config.log_file).is_relative())
    config.log_file = (data_dir / config.log_file).string();
  config.hide_banner = top.get_bool("hide-banner", false);
  for (const auto& dir : top.get_string_list("plugin-dirs")) {
    if (dir.empty()) top.fail("plugin-dirs", "a plugin directory cannot be empty");
    config.plugin_dirs.emplace_back(dir);
  }
  // Go Conduit keys conduit accepts and ignores.
  top.accepted_without_effect("cpu-profile", "use perf or a profiler instead");
  top.accepted_without_effect("telemetry", "conduit sends no telemetry");
}

// "host:port", ":port" or "[v6]:port", as Go's net.Listen takes them.
void check_listen_address(PluginConfig& table, const std::string& addr) {
  auto colon = addr.rfind(':');
  std::string port = colon == std::string::npos ? "" : addr.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5 &&
                port.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(port) > 65535)
    table.fail("addr", "expected host:port, :port or [v6]:port, not \"" + addr + "\"");
}

void read_api_and_metrics(PluginConfig& top, Config& config) {
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
}

void read_plugins(PluginConfig& top, Config& config, const std::string& file_name,
                  const std::shared_ptr<const void>& document) {
  auto importer = top.get_table("importer");
  if (!importer) top.fail("", "missing [importer] section");
  config.importer = read_plugin(*importer, "importer", file_name, document);
  for (auto& processor : top.get_table_list("processors"))
    config.processors.push_back(read_plugin(processor, "processor", file_name, document));
  auto exporter = top.get_table("exporter");
  if (!exporter) top.fail("", "missing [exporter] section");
  config.exporter = read_plugin(*exporter, "exporter", file_name, document);
}

}  // namespace

Config parse_config(std::string_view text, const std::filesystem::path& data_dir,
                    const std::string& file_name) {
  std::shared_ptr<toml::table> document = parse_document(text, file_name);
  PluginConfig top(document, document.get(), file_name, "");
  Config config;
  config.data_dir = data_dir;
  config.file = data_dir / "conduit.toml";
  config.log_level = read_log_level(top);
  read_global_keys(top, config);
  config.warnings = top.warnings();
  read_api_and_metrics(top, config);
  read_plugins(top, config, file_name, document);
  top.finish();
  return config;
}

Config load_config(const std::filesystem::path& data_dir) {
  auto file = data_dir / "conduit.toml";
  auto fail = [&](const std::string& why) {
    return ConfigError(file.string() + ": cannot read the configuration: " + why);
  };
  // Non-blocking open: a FIFO here must be refused, not wait for a writer
  // (on a reload that would stop the event loop).
  RegularFile opened = open_regular_file(file);
  if (!opened) {
    if (opened.open_errno == ENOENT)
      for (const char* go_name : {"conduit.yml", "conduit.yaml"})
        if (std::error_code ec; std::filesystem::exists(data_dir / go_name, ec))
          throw fail(opened.error + "; " + (data_dir / go_name).string() +
                     " is a Go Conduit configuration: convert it with `conduit init --from-yaml " +
                     (data_dir / go_name).string() + "`");
    throw fail(opened.error);
  }
  // Read at most one byte more than the limit, whatever st_size says.
  std::string text;
  if (int error = read_at_most(opened.fd.get(), kMaxConfigBytes, text))
    throw fail(std::strerror(error));
  return parse_config(text, data_dir, file.string());
}

std::string toml_table_to_json(std::string_view text, const std::string& file) {
  try {
    toml::table table = toml::parse(text, file);
    std::ostringstream out;
    out << toml::json_formatter{table};
    return out.str();
  } catch (const toml::parse_error& e) {
    throw ConfigError(location(file, e.source()) + ": " + std::string(e.description()));
  }
}

}  // namespace conduit
