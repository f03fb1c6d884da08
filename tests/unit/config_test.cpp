#include <gtest/gtest.h>

#include "core/config.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace std::chrono_literals;

namespace {

Config parse(const std::string& text) {
  return parse_config(text, "/data", "/data/conduit.toml");
}

std::string error_of(const std::string& text, bool build = true) {
  try {
    Config c = parse(text);
    if (build) {
      static Registry registry = test::test_registry();
      build_plugins(registry, c);
    }
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

const char* kMinimal = "[importer]\nname = \"noop\"\n[exporter]\nname = \"noop\"\n";

}  // namespace

TEST(Duration, GoSyntax) {
  EXPECT_EQ(parse_duration("1s"), 1s);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("1m30s"), 90s);
  EXPECT_EQ(parse_duration("1.5h"), 90min);
  EXPECT_EQ(parse_duration("0"), 0ns);
  EXPECT_EQ(parse_duration("10us"), 10us);
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("1"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("1x"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("1..2s"));
}

TEST(Config, DefaultsFromMinimalFile) {
  Config c = parse(kMinimal);
  EXPECT_EQ(c.retry_count, 10u);
  EXPECT_EQ(c.retry_delay, 1s);
  EXPECT_EQ(c.stop_timeout, 30s);
  EXPECT_EQ(c.pid_file, "/data/conduit.pid");
  EXPECT_EQ(c.log_level, LogLevel::info);
  EXPECT_EQ(c.importer.name, "noop");
  EXPECT_TRUE(c.processors.empty());
  EXPECT_EQ(c.exporter.name, "noop");
}

TEST(Config, AllTopLevelKeys) {
  Config c = parse(R"(log-level = "debug"
log-file = "conduit.log"
retry-count = 0
retry-delay = "250ms"
stop-timeout = "1m"
pid-file = "/run/conduit/conduit.pid"
hide-banner = true
[api]
addr = ":8981"
[metrics]
mode = "on"
addr = ":9999"
prefix = "cx"
[importer]
name = "generator"
[importer.config]
txns-per-round = 5
[[processors]]
name = "noop"
[[processors]]
name = "noop"
[exporter]
name = "noop"
)");
  EXPECT_EQ(c.log_level, LogLevel::debug);
  EXPECT_EQ(c.log_file, "/data/conduit.log");
  EXPECT_EQ(c.retry_count, 0u);
  EXPECT_EQ(c.retry_delay, 250ms);
  EXPECT_EQ(c.stop_timeout, 60s);
  EXPECT_EQ(c.pid_file, "/run/conduit/conduit.pid");
  EXPECT_TRUE(c.hide_banner);
  EXPECT_EQ(c.api.addr, ":8981");
  EXPECT_EQ(c.metrics.mode, "ON");
  EXPECT_EQ(c.metrics.prefix, "cx");
  EXPECT_EQ(c.processors.size(), 2u);
}

struct Rejection {
  const char* name;
  std::string text;
  std::string expected;  // substring of the message, location first
};

class ConfigRejection : public ::testing::TestWithParam<Rejection> {};

TEST_P(ConfigRejection, NamesFileLineColumn) {
  const auto& p = GetParam();
  std::string error = error_of(p.text);
  EXPECT_NE(error.find(p.expected), std::string::npos) << "message: " << error;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ConfigRejection,
    ::testing::Values(
        Rejection{"syntax", "log-level = \n", "/data/conduit.toml:1:"},
        Rejection{"unknown_top_key", std::string("colour = 1\n") + kMinimal,
                  "/data/conduit.toml:1:1: unknown key 'colour'"},
        Rejection{"wrong_type", std::string("retry-count = \"ten\"\n") + kMinimal,
                  "/data/conduit.toml:1:15: retry-count: expected an integer, found a string"},
        Rejection{"negative", std::string("retry-count = -1\n") + kMinimal,
                  "/data/conduit.toml:1:15: retry-count: must not be negative"},
        Rejection{"bad_duration", std::string("retry-delay = \"soon\"\n") + kMinimal,
                  "/data/conduit.toml:1:15: retry-delay: invalid duration \"soon\""},
        Rejection{"duration_not_string", std::string("stop-timeout = 30\n") + kMinimal,
                  "stop-timeout: expected a duration string"},
        Rejection{"zero_stop_timeout", std::string("stop-timeout = \"0s\"\n") + kMinimal,
                  "stop-timeout: must be greater than zero"},
        Rejection{"bad_level", std::string("log-level = \"loud\"\n") + kMinimal,
                  "/data/conduit.toml:1:13: log-level: unknown level \"loud\""},
        Rejection{"missing_importer", "[exporter]\nname = \"noop\"\n",
                  "missing [importer] section"},
        Rejection{"missing_exporter", "[importer]\nname = \"noop\"\n",
                  "missing [exporter] section"},
        Rejection{"missing_name", "[importer]\n[exporter]\nname = \"noop\"\n",
                  "importer.name: a plugin name is required"},
        Rejection{"unknown_importer", "[importer]\nname = \"nope\"\n[exporter]\nname = \"noop\"\n",
                  "/data/conduit.toml:2:8: unknown importer 'nope' (known: generator, noop, "
                  "test_importer)"},
        Rejection{"unknown_processor",
                  std::string(kMinimal) + "[[processors]]\nname = \"filterz\"\n",
                  "/data/conduit.toml:6:8: unknown processor 'filterz'"},
        Rejection{"unknown_exporter", "[importer]\nname = \"noop\"\n[exporter]\nname = \"pg\"\n",
                  "/data/conduit.toml:4:8: unknown exporter 'pg'"},
        Rejection{"unknown_plugin_section_key",
                  "[importer]\nname = \"noop\"\nkind = 1\n[exporter]\nname = \"noop\"\n",
                  "/data/conduit.toml:3:1: unknown key 'importer.kind'"},
        Rejection{"unknown_plugin_config_key",
                  "[importer]\nname = \"generator\"\n[importer.config]\ntxns = 5\n[exporter]\nname "
                  "= \"noop\"\n",
                  "/data/conduit.toml:4:1: unknown key 'importer.config.txns'"},
        Rejection{"plugin_config_wrong_type",
                  "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = \"many\"\n"
                  "[exporter]\nname = \"noop\"\n",
                  "/data/conduit.toml:4:18: importer.config.txns-per-round: expected an integer"},
        Rejection{"metrics_mode", std::string("[metrics]\nmode = \"maybe\"\n") + kMinimal,
                  "metrics.mode: expected \"ON\" or \"OFF\""},
        Rejection{"processors_not_array", std::string("processors = 3\n") + kMinimal,
                  "processors: expected an array of tables"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Config, LoadReportsMissingFile) {
  test::TempDir dir;
  try {
    load_config(dir.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("conduit.toml: cannot read the configuration"),
              std::string::npos);
  }
}

// Go Conduit's keys (conduit/data/config.go): pid-filepath, log-level as
// logrus parses it (any case; panic and fatal), and keys conduit accepts with
// a warning that they do nothing: cpu-profile, telemetry.*, postgresql's test.
TEST(ConfigGoCompat, PidFilepathIsAnAliasOfPidFile) {
  Config c = parse(std::string("pid-filepath = \"/run/c.pid\"\n") + kMinimal);
  EXPECT_EQ(c.pid_file, "/run/c.pid");
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_NE(error_of(std::string("pid-file = \"a\"\npid-filepath = \"b\"\n") + kMinimal, false)
                .find("/data/conduit.toml:2:16: pid-filepath: pid-filepath is Go Conduit's name "
                      "for pid-file: give only one"),
            std::string::npos);
}

TEST(ConfigGoCompat, LogLevelsAsLogrusParsesThem) {
  const std::vector<std::pair<std::string, LogLevel>> levels = {
      {"PANIC", LogLevel::error}, {"fatal", LogLevel::error},  {"Error", LogLevel::error},
      {"WARN", LogLevel::warn},   {"warning", LogLevel::warn}, {"INFO", LogLevel::info},
      {"Debug", LogLevel::debug}, {"TRACE", LogLevel::trace}};
  for (const auto& [text, level] : levels)
    EXPECT_EQ(parse("log-level = \"" + text + "\"\n" + kMinimal).log_level, level) << text;
  EXPECT_NE(error_of(std::string("log-level = \"verbose\"\n") + kMinimal, false)
                .find("unknown level \"verbose\""),
            std::string::npos);
}

TEST(ConfigGoCompat, GoOnlyKeysAreAcceptedWithAWarning) {
  Config c = parse(std::string(R"(cpu-profile = "/tmp/cpu.prof"
[telemetry]
enabled = true
uri = "https://example.org"
[importer]
name = "noop"
[exporter]
name = "postgresql"
[exporter.config]
connection-string = "host=/nonexistent dbname=x"
test = true
)"));
  // The plugin accepts its configuration: `test` is not an unknown key, and
  // the plugin, not the core, knows it has no effect.
  EXPECT_NO_THROW(build_plugins(builtin_registry(), c));
  ASSERT_EQ(c.warnings.size(), 3u);
  EXPECT_NE(c.warnings[0].find("/data/conduit.toml:1:15: cpu-profile has no effect"),
            std::string::npos)
      << c.warnings[0];
  EXPECT_NE(c.warnings[1].find("telemetry has no effect"), std::string::npos) << c.warnings[1];
  EXPECT_NE(c.warnings[2].find("/data/conduit.toml:11:8: exporter.config.test has no effect"),
            std::string::npos)
      << c.warnings[2];
}

TEST(ConfigGoCompat, ADataDirWithOnlyAGoConduitYmlNamesTheConversion) {
  for (const char* name : {"conduit.yml", "conduit.yaml"}) {
    test::TempDir dir;
    test::write_text(dir / name, "log-level: info\n");
    try {
      load_config(dir.path());
      ADD_FAILURE() << "expected ConfigError";
    } catch (const ConfigError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("is a Go Conduit configuration: convert it with `conduit init "
                          "--from-yaml " +
                          (dir / name).string() + "`"),
                std::string::npos)
          << what;
    }
  }
}

// plugin-check's --config: a plugin's config table as the JSON the protocol sends.
TEST(Config, TomlTableToJson) {
  auto json = toml_table_to_json("path = \"rounds.ndjson\"\nn = 3\n[sub]\nok = true\n", "c.toml");
  EXPECT_NE(json.find("\"path\" : \"rounds.ndjson\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"n\" : 3"), std::string::npos) << json;
  EXPECT_NE(json.find("\"ok\" : true"), std::string::npos) << json;
  try {
    toml_table_to_json("path = \n", "c.toml");
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.toml:1"), std::string::npos) << e.what();
  }
}
