#include "core/yaml_import.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/config.hpp"
#include "core/encoding.hpp"

namespace conduit {
namespace {

class Converter {
 public:
  explicit Converter(std::string source) : source_(std::move(source)) {}

  std::string run(std::string_view yaml) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
      throw ConfigError(where(e.mark) + ": " + e.msg);
    }
    out_ =
        "# Converted from " + source_ + " by `conduit init --from-yaml`. See conduit.toml(5).\n\n";
    if (!root.IsDefined() || root.IsNull()) fail(root, "the file holds no configuration");
    if (!root.IsMap()) fail(root, "expected a map of Go Conduit's keys");
    ExpansionBudget budget;
    std::vector<YAML::Node> path;
    check_expansion(root, path, budget);
    convert(root);
    if (out_.size() > kMaxConfigBytes)
      throw ConfigError(source_ + ": the converted configuration would be larger than " +
                        std::to_string(kMaxConfigBytes) + " bytes, more than conduit.toml may be");
    return out_;
  }

 private:
  enum class Want { any, string, integer, boolean };

  // yaml-cpp resolves an alias to the anchored node itself: `x: &a [*a]` is a
  // cycle in the node graph (walking it recursed until the stack overflowed),
  // and aliases of aliases ("billion laughs") expand exponentially when the
  // converter writes each use out. Go's yaml.v3 refuses both ("anchor 'a'
  // value contains itself", "excessive aliasing"). One walk over the document
  // as the converter will expand it refuses them before any output exists:
  // a node that is its own ancestor, more than kMaxYamlNodes nodes or
  // kMaxConfigBytes bytes of scalars expanded, or nesting deeper than
  // kMaxYamlNesting (conduit.toml's own bound).
  struct ExpansionBudget {
    size_t nodes = 0;
    size_t scalar_bytes = 0;
  };

  void check_expansion(const YAML::Node& node, std::vector<YAML::Node>& path,
                       ExpansionBudget& budget) const {
    for (const auto& ancestor : path)
      if (ancestor.is(node))
        fail(node, "an alias refers to a node that contains it (an alias cycle)");
    if (path.size() >= kMaxYamlNesting)
      fail(node, "nested more than " + std::to_string(kMaxYamlNesting) + " levels deep");
    if (++budget.nodes > kMaxYamlNodes)
      fail(node,
           "more than " + std::to_string(kMaxYamlNodes) + " YAML nodes once aliases are expanded");
    if (node.IsScalar() && (budget.scalar_bytes += node.Scalar().size() + 1) > kMaxConfigBytes)
      fail(node, "more than " + std::to_string(kMaxConfigBytes) +
                     " bytes of values once aliases are expanded");
    if (!node.IsMap() && !node.IsSequence()) return;
    path.push_back(node);
    for (const auto& entry : node) {
      if (node.IsSequence()) {
        check_expansion(entry, path, budget);
      } else {
        check_expansion(entry.first, path, budget);
        check_expansion(entry.second, path, budget);
      }
    }
    path.pop_back();
  }

  void convert(const YAML::Node& root) {
    std::string tables;  // [api], [metrics], plugins: after every top-level key
    for (const auto& entry : root) {
      const std::string key = entry.first.Scalar();
      const YAML::Node& value = entry.second;
      if (key == "log-level" || key == "log-file") {
        scalar_key(key, value, Want::string);
      } else if (key == "retry-count") {
        scalar_key(key, value, Want::integer);
      } else if (key == "hide-banner") {
        scalar_key(key, value, Want::boolean);
      } else if (key == "pid-filepath") {
        scalar_key("pid-file", value, Want::string);
      } else if (key == "retry-delay") {
        retry_delay(value);
      } else if (key == "cpu-profile") {
        comment_out(key, value, "no equivalent: use perf or another profiler");
      } else if (key == "telemetry") {
        comment_out(key, value, "no equivalent: conduit sends no telemetry");
      } else if (key == "data-dir" || key == "next-round-override") {
        comment_out(key, value,
                    "Go reads this from the command line only (-d, -r), never from the file");
      } else if (key == "api" || key == "metrics") {
        tables += simple_table(key, value);
      } else if (key == "importer" || key == "exporter") {
        if (value.IsNull()) continue;  // refused when loaded: both are required
        tables += plugin("[" + key + "]", key, value);
      } else if (key == "processors") {
        if (value.IsNull()) continue;
        if (!value.IsSequence()) fail(value, "processors: expected a list of plugins");
        for (const auto& processor : value)
          tables += plugin("[[processors]]", "processors", processor);
      } else {
        comment_out(key, value, "not a Go Conduit key: Go ignores it, and so does this file");
      }
    }
    out_ += tables;
  }

  std::string where(const YAML::Mark& mark) const {
    if (mark.is_null()) return source_;
    return source_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }

  [[noreturn]] void fail(const YAML::Node& node, const std::string& message) const {
    throw ConfigError(where(node.Mark()) + ": " + message);
  }

  static std::string key_text(const std::string& key) {
    bool bare = !key.empty();
    for (unsigned char c : key)
      if (!std::isalnum(c) && c != '_' && c != '-') bare = false;
    return bare ? key : quote(key);
  }

  // A TOML basic string: JSON's escapes plus DEL; bytes that are not UTF-8
  // (which TOML cannot hold) become U+FFFD.
  static std::string quote(const std::string& text) {
    std::string out;
    encoding::append_quoted(out, text,
                            {.invalid = encoding::Quoting::Invalid::replacement,
                             .escape_line_separators = false,
                             .escape_delete = true});
    return out;
  }

  // A YAML scalar as TOML, typed as Go's yaml.v3 types an untyped value:
  // quoted scalars are strings; plain ones may be null, bool, int or float.
  // nullopt for null.
  std::optional<std::string> scalar(const YAML::Node& node, Want want,
                                    const std::string& name = {}) const {
    auto mismatch = [&] {
      fail(node, (name.empty() ? "" : name + ": ") + "expected " + wanted(want));
    };
    const std::string& text = node.Scalar();
    bool quoted = node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str";
    if (!quoted) {
      if (one_of(text, {"~", "null", "Null", "NULL", ""})) return std::nullopt;
      // Into a bool field yaml.v3 also takes YAML 1.1's words.
      if (want == Want::boolean) {
        if (one_of(text, {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})) return "true";
        if (one_of(text, {"n", "N", "no", "No", "NO", "off", "Off", "OFF"})) return "false";
      }
      if (one_of(text, {"true", "True", "TRUE", "false", "False", "FALSE"})) {
        if (want != Want::any && want != Want::boolean) mismatch();
        return text[0] == 't' || text[0] == 'T' ? "true" : "false";
      }
      if (is_yaml_int(text)) {
        if (want != Want::any && want != Want::integer) mismatch();
        int base = 10;
        std::string digits = text;
        if (text.rfind("0x", 0) == 0) base = 16, digits = text.substr(2);
        if (text.rfind("0o", 0) == 0) base = 8, digits = text.substr(2);
        if (!digits.empty() && digits[0] == '+') digits.erase(0, 1);
        int64_t v = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
        if (ec == std::errc() && end == digits.data() + digits.size()) return std::to_string(v);
        return quote(text);  // beyond int64: keep the digits
      }
      if (is_yaml_float(text)) {
        if (want != Want::any) mismatch();
        if (text.find("inf") != std::string::npos || text.find("Inf") != std::string::npos ||
            text.find("INF") != std::string::npos)
          return text[0] == '-' ? "-inf" : "inf";
        if (text.find_first_of("nN") != std::string::npos) return "nan";
        double v = std::strtod(text.c_str(), nullptr);
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.17g", v);
        std::string out = buf;
        if (out.find_first_of(".e") == std::string::npos) out += ".0";
        return out;
      }
    }
    if (want == Want::integer || want == Want::boolean) mismatch();
    return quote(text);
  }

  static bool one_of(const std::string& text, std::initializer_list<std::string_view> words) {
    for (auto word : words)
      if (text == word) return true;
    return false;
  }

  static bool all_of(std::string_view text, bool (*accept)(char)) {
    if (text.empty()) return false;
    for (char c : text)
      if (!accept(c)) return false;
    return true;
  }
  static bool dec(char c) { return c >= '0' && c <= '9'; }
  static bool hex(char c) { return dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
  static bool oct(char c) { return c >= '0' && c <= '7'; }

  // YAML 1.2 core schema: [-+]?[0-9]+, 0x[0-9a-fA-F]+, 0o[0-7]+.
  static bool is_yaml_int(std::string_view t) {
    if (t.rfind("0x", 0) == 0) return all_of(t.substr(2), hex);
    if (t.rfind("0o", 0) == 0) return all_of(t.substr(2), oct);
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.remove_prefix(1);
    return all_of(t, dec);
  }

  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan
  static bool is_yaml_float(std::string_view t) {
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.remove_prefix(1);
    for (std::string_view special : {".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"})
      if (t == special) return true;
    size_t i = 0;
    auto digits = [&] {
      size_t start = i;
      while (i < t.size() && dec(t[i])) ++i;
      return i - start;
    };
    size_t whole = digits();
    size_t fraction = 0;
    if (i < t.size() && t[i] == '.') {
      ++i;
      fraction = digits();
    }
    if (whole == 0 && fraction == 0) return false;
    if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
      ++i;
      if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
      if (digits() == 0) return false;
    }
    return i == t.size();
  }

  static std::string wanted(Want want) {
    switch (want) {
      case Want::integer:
        return "an integer";
      case Want::boolean:
        return "true or false";
      case Want::string:
        return "a string";
      default:
        return "a value";
    }
  }

  void scalar_key(const std::string& toml_key, const YAML::Node& value, Want want) {
    if (!value.IsScalar() && !value.IsNull()) fail(value, toml_key + ": expected " + wanted(want));
    auto text = value.IsNull() ? std::nullopt : scalar(value, want, toml_key);
    if (!text) {
      out_ += "# " + toml_key + ": empty in the YAML, so the default\n";
      return;
    }
    out_ += key_text(toml_key) + " = " + *text + "\n";
  }

  // Go decodes retry-delay as a time.Duration: a duration string, or an
  // integer count of nanoseconds.
  void retry_delay(const YAML::Node& value) {
    if (!value.IsScalar()) fail(value, "retry-delay: expected a duration such as \"1s\"");
    const std::string& text = value.Scalar();
    if (parse_duration(text)) {
      out_ += "retry-delay = " + quote(text) + "\n";
      return;
    }
    int64_t ns = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ns);
    if (ec != std::errc() || end != text.data() + text.size() || ns < 0)
      fail(value, "retry-delay: \"" + text + "\" is not a duration");
    out_ += "retry-delay = " + quote(format_duration(std::chrono::nanoseconds(ns))) + "  # " +
            text + " nanoseconds in the YAML\n";
  }

  void comment_out(const std::string& key, const YAML::Node& value, const std::string& why) {
    out_ += "# " + key + ": " + why + ". It was:\n";
    YAML::Emitter emitter;
    emitter << YAML::BeginMap << YAML::Key << key << YAML::Value << value << YAML::EndMap;
    std::string text = emitter.c_str();
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      out_ += "#   " + text.substr(start, end - start) + "\n";
      start = end + 1;
    }
  }

  // [api] and [metrics]: scalars only.
  std::string simple_table(const std::string& key, const YAML::Node& value) {
    if (value.IsNull()) return {};
    if (!value.IsMap()) fail(value, key + ": expected a map");
    std::string saved = std::move(out_);
    out_ = "\n[" + key + "]\n";
    for (const auto& entry : value) {
      const std::string sub = entry.first.Scalar();
      scalar_key(sub, entry.second, Want::any);
    }
    std::string table = std::move(out_);
    out_ = std::move(saved);
    return table;
  }

  std::string plugin(const std::string& header, const std::string& path, const YAML::Node& value) {
    if (!value.IsMap()) fail(value, path + ": expected a map with name and config");
    std::string out = "\n" + header + "\n";
    YAML::Node name = value["name"];
    if (!name || !name.IsScalar() || name.Scalar().empty())
      fail(value, path + ": a plugin needs a name");
    out += "name = " + quote(name.Scalar()) + "\n";
    for (const auto& entry : value) {
      const std::string key = entry.first.Scalar();
      if (key == "name" || key == "config") continue;
      out += "# " + key + ": not a plugin key (Go reads only name and config): dropped\n";
    }
    YAML::Node config = value["config"];
    if (config && !config.IsNull()) {
      if (!config.IsMap()) fail(config, path + ".config: expected a map");
      out += table(path + ".config", config, false);
    }
    return out;
  }

  // A map that reads well as an inline table: scalars and lists of scalars.
  static bool shallow(const YAML::Node& map) {
    for (const auto& entry : map) {
      const YAML::Node& value = entry.second;
      if (value.IsMap()) return false;
      if (value.IsSequence())
        for (const auto& element : value)
          if (!element.IsScalar() && !element.IsNull()) return false;
    }
    return true;
  }

  static bool is_table_array(const YAML::Node& node) {
    if (!node.IsSequence() || node.size() == 0) return false;
    for (const auto& element : node)
      if (!element.IsMap()) return false;
    return true;
  }

  // A value on one line: scalars, arrays, inline tables.
  std::string inline_value(const YAML::Node& node) const {
    if (node.IsScalar()) return scalar(node, Want::any).value_or("\"\"");
    if (node.IsNull()) return "\"\"";
    if (node.IsSequence()) {
      std::string out = "[";
      bool first = true;
      for (const auto& element : node) {
        if (element.IsNull()) continue;  // TOML has no null
        out += first ? " " : ", ";
        first = false;
        out += inline_value(element);
      }
      return out + (first ? "]" : " ]");
    }
    std::string out = "{";
    bool first = true;
    for (const auto& entry : node) {
      if (entry.second.IsNull()) continue;
      out += first ? " " : ", ";
      first = false;
      out += key_text(entry.first.Scalar()) + " = " + inline_value(entry.second);
    }
    return out + (first ? "}" : " }");
  }

  // [path] then its keys: values first, sub-tables after (TOML's order rule).
  std::string table(const std::string& path, const YAML::Node& map, bool array_element) {
    std::string out = array_element ? "[[" + path + "]]\n" : "[" + path + "]\n";
    std::string later;
    for (const auto& entry : map) {
      const std::string key = entry.first.Scalar();
      const YAML::Node& value = entry.second;
      const std::string sub_path = path + "." + key_text(key);
      if (value.IsNull()) {
        out += "# " + key_text(key) + ": empty in the YAML, so the plugin's default\n";
      } else if (value.IsMap()) {
        later += table(sub_path, value, false);
      } else if (is_table_array(value) &&
                 !std::all_of(value.begin(), value.end(),
                              [](const YAML::Node& element) { return shallow(element); })) {
        for (const auto& element : value) later += table(sub_path, element, true);
      } else if (is_table_array(value)) {
        out += key_text(key) + " = [\n";
        for (const auto& element : value) out += "  " + inline_value(element) + ",\n";
        out += "]\n";
      } else {
        out += key_text(key) + " = " + inline_value(value) + "\n";
      }
    }
    return out + later;
  }

  std::string source_;
  std::string out_;
};

}  // namespace

std::string convert_go_yaml_config(std::string_view yaml, const std::string& source_name) {
  if (yaml.size() > kMaxConfigBytes)
    throw ConfigError(source_name + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  try {
    return Converter(source_name).run(yaml);
  } catch (const YAML::Exception& e) {  // none is expected past parsing: still a bad file
    throw ConfigError(source_name + ": " + e.msg);
  }
}

}  // namespace conduit
