// Go Conduit's conduit.yml -> conduit.toml, on the sample configs Go Conduit
// ships (vendored under tests/data/go-conduit/, each naming its source).
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/registry.hpp"
#include "core/yaml_import.hpp"
#include "plugins/builtin.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

std::filesystem::path go_data() {
  const char* root = std::getenv("CONDUIT_SOURCE_ROOT");
  return std::filesystem::path(root ? root : ".") / "tests" / "data" / "go-conduit";
}

// A vendored file without its two-line "Vendored test data" header.
std::string go_file(const std::string& name) {
  std::string text = read_file(go_data() / name);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(text.rfind("# ", 0), 0u) << name;
    text.erase(0, text.find('\n') + 1);
  }
  return text;
}

// Go's `conduit init` (pkg/cli/internal/initialize/init.go): each plugin's
// sample.yaml indented by formatObject, processors as list items, substituted
// into conduit.yml.example's three %s.
std::string format_object(const std::string& sample, bool is_array) {
  std::string out;
  std::istringstream lines(sample);
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    if (first && is_array)
      out += "  - ";
    else if (!line.empty())
      out += "    ";
    out += line + "\n";
    first = false;
  }
  return out;
}

std::string go_init_yaml(const std::string& importer, const std::vector<std::string>& processors,
                         const std::string& exporter) {
  std::string text = go_file("conduit.yml.example");
  std::string processor_text;
  for (const auto& p : processors)
    processor_text += format_object(go_file("processor-" + p + ".sample.yaml"), true);
  for (const std::string& part :
       {format_object(go_file("importer-" + importer + ".sample.yaml"), false), processor_text,
        format_object(go_file("exporter-" + exporter + ".sample.yaml"), false)}) {
    auto at = text.find("%s");
    EXPECT_NE(at, std::string::npos);
    text.replace(at, 2, part);
  }
  return text;
}

Config convert_and_parse(const std::string& yaml) {
  std::string toml = convert_go_yaml_config(yaml, "conduit.yml");
  try {
    return parse_config(toml, "/data", "/data/conduit.toml");
  } catch (const ConfigError& e) {
    ADD_FAILURE() << e.what() << "\n" << toml;
    throw;
  }
}

std::string build_error(Config& config) {
  try {
    build_plugins(builtin_registry(), config);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(GoYaml, EveryPluginSampleInGosInitTemplateConverts) {
  for (const std::string importer : {"algod", "file_reader", "noop"})
    for (const std::string exporter : {"file_writer", "postgresql", "noop"})
      for (const std::vector<std::string>& processors :
           {std::vector<std::string>{}, {"noop"}, {"filter_processor", "noop"}}) {
        SCOPED_TRACE(importer + " -> " + exporter + " with " + std::to_string(processors.size()) +
                     " processors");
        Config config = convert_and_parse(go_init_yaml(importer, processors, exporter));
        EXPECT_EQ(config.importer.name, importer);
        EXPECT_EQ(config.exporter.name, exporter);
        ASSERT_EQ(config.processors.size(), processors.size());
        for (size_t i = 0; i < processors.size(); ++i)
          EXPECT_EQ(config.processors[i].name, processors[i]);
        // conduit.yml.example's top-level keys.
        EXPECT_EQ(config.log_level, LogLevel::info);  // "INFO"
        EXPECT_EQ(config.retry_count, 10u);
        EXPECT_EQ(config.retry_delay, std::chrono::seconds(1));
        EXPECT_FALSE(config.hide_banner);
        EXPECT_EQ(config.api.addr, ":8981");
        EXPECT_EQ(config.metrics.mode, "OFF");
        EXPECT_EQ(config.metrics.addr, ":9999");
        EXPECT_EQ(config.metrics.prefix, "conduit");
        // Every plugin key is one the plugin knows. The refusals are of two
        // placeholders of the samples that conduit checks and Go does not:
        // file_reader's block-dir, commented out (Go would then read
        // genesis.json from its working directory), and the filter's "ADDRESS"
        // (Go would accept it and never match).
        std::string error = build_error(config);
        if (importer == "file_reader")
          EXPECT_NE(error.find("block-dir is required"), std::string::npos) << error;
        else if (processors.size() == 2)
          EXPECT_NE(error.find("'ADDRESS' is not a valid Algorand address"), std::string::npos)
              << error;
        else
          EXPECT_EQ(error, "");
      }
}

TEST(GoYaml, PluginConfigsAreCarriedKeyForKey) {
  std::string toml = convert_go_yaml_config(
      go_init_yaml("algod", {"filter_processor"}, "postgresql"), "conduit.yml");
  Config config = parse_config(toml, "/data", "/data/conduit.toml");
  auto& algod = config.importer.config;
  EXPECT_EQ(algod.get_string("mode", ""), "follower");
  EXPECT_EQ(algod.get_string("netaddr", ""), "http://your-algod-url:port");
  EXPECT_EQ(algod.get_string("token", ""), "contents of your algod.token file");
  auto catchup = algod.get_table("catchup-config");
  ASSERT_TRUE(catchup);
  EXPECT_EQ(catchup->get_string("admin-token", "x"), "");
  auto& filter = config.processors.at(0).config;
  EXPECT_TRUE(filter.get_bool("search-inner", false));
  EXPECT_TRUE(filter.get_bool("omit-group-transactions", false));
  auto filters = filter.get_table_list("filters");
  ASSERT_EQ(filters.size(), 1u);
  auto any = filters[0].get_table_list("any");
  ASSERT_EQ(any.size(), 1u);
  EXPECT_EQ(any[0].get_string("tag", ""), "txn.rcv");
  EXPECT_EQ(any[0].get_string("expression-type", ""), "equal");
  EXPECT_EQ(any[0].get_string("expression", ""), "ADDRESS");
  auto& pg = config.exporter.config;
  EXPECT_EQ(pg.get_string("connection-string", ""), "host= port=5432 user= password= dbname=");
  EXPECT_EQ(pg.get_uint("max-conn", 0), 20u);
  auto task = pg.get_table("delete-task");
  ASSERT_TRUE(task);
  EXPECT_EQ(task->get_int("interval", 7), 0);
  EXPECT_EQ(task->get_uint("rounds", 0), 100000u);
  // The commented-out keys of the template stay out; the telemetry block was
  // all comments too.
  EXPECT_EQ(toml.find("telemetry"), std::string::npos) << toml;
}

TEST(GoYaml, GoTestConfigsConvert) {
  // Go Conduit's own test configs: file_reader -> file_writer, and algod -> file_writer.
  Config reader = convert_and_parse(go_file("filereader-test.conduit.yml"));
  EXPECT_EQ(reader.importer.name, "file_reader");
  EXPECT_EQ(reader.importer.config.get_string("block-dir", ""), "test_resources/filereader_blocks");
  EXPECT_EQ(reader.exporter.config.get_bool("drop-certificate", true), false);
  EXPECT_TRUE(reader.processors.empty());
  Config init = convert_and_parse(go_file("conduit.test.init.default.yml"));
  EXPECT_EQ(init.importer.name, "algod");
  EXPECT_EQ(init.importer.config.get_string("netaddr", ""), "http://url");
  EXPECT_EQ(init.exporter.config.get_string("block-dir", ""), "/path/to/block/files");
}

TEST(GoYaml, KeysWithoutEquivalentBecomeExplainedComments) {
  std::string toml = convert_go_yaml_config(R"(log-level: PANIC
pid-filepath: /run/conduit.pid
cpu-profile: /tmp/cpu.prof
retry-delay: 1500000000
hide-banner: yes
data-dir: /somewhere
surprise: 3
telemetry:
  enabled: true
  uri: "https://example.org"
importer:
  name: noop
  config:
processors:
exporter:
  name: noop
)",
                                            "conduit.yml");
  Config config = parse_config(toml, "/data", "/data/conduit.toml");
  EXPECT_EQ(config.log_level, LogLevel::error);
  EXPECT_EQ(config.pid_file, "/run/conduit.pid");
  EXPECT_EQ(config.retry_delay, std::chrono::milliseconds(1500));
  EXPECT_TRUE(config.hide_banner);
  EXPECT_TRUE(config.warnings.empty()) << "comments, not keys";
  for (const char* needle :
       {"# cpu-profile: no equivalent", "#   cpu-profile: /tmp/cpu.prof",
        "# telemetry: no equivalent", "#     uri: https://example.org",
        "# data-dir: Go reads this from the command line only", "# surprise: not a Go Conduit key"})
    EXPECT_NE(toml.find(needle), std::string::npos) << needle << " in\n" << toml;
}

TEST(GoYaml, ScalarsKeepTheirYamlTypes) {
  std::string toml = convert_go_yaml_config(R"(importer:
  name: noop
  config:
    quoted-number: "10"
    number: 10
    hex: 0x1f
    negative: -3
    float: 1.5
    yes-string: yes
    flag: True
    nothing: ~
    list: [1, "two", 3.0]
    nested:
      deeper:
        key with space: "v"
exporter:
  name: noop
)",
                                            "conduit.yml");
  Config config = parse_config(toml, "/data", "/data/conduit.toml");
  auto& c = config.importer.config;
  EXPECT_EQ(c.get_string("quoted-number", ""), "10");
  EXPECT_EQ(c.get_uint("number", 0), 10u);
  EXPECT_EQ(c.get_uint("hex", 0), 31u);
  EXPECT_EQ(c.get_int("negative", 0), -3);
  EXPECT_EQ(c.get_scalar_text("float"), "1.5");
  EXPECT_EQ(c.get_string("yes-string", ""), "yes");  // YAML 1.2, as yaml.v3 for untyped values
  EXPECT_TRUE(c.get_bool("flag", false));
  EXPECT_FALSE(c.contains("nothing"));
  auto deeper = c.get_table("nested")->get_table("deeper");
  ASSERT_TRUE(deeper);
  EXPECT_EQ(deeper->get_string("key with space", ""), "v");
}

TEST(GoYaml, MalformedYamlIsRefusedWithItsLocation) {
  for (const auto& [yaml, needle] : std::vector<std::pair<std::string, std::string>>{
           {"importer: [unclosed\n", "conduit.yml:"},
           {"- a list\n", "expected a map"},
           {"", "no configuration"},
           {"retry-count: lots\n", "conduit.yml:1:14: retry-count: expected an integer"},
           {"processors: {name: noop}\n", "expected a list of plugins"},
           {"importer:\n  config: {}\n", "a plugin needs a name"},
       }) {
    try {
      convert_go_yaml_config(yaml, "conduit.yml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

namespace {

// "Billion laughs" inside a plugin config: `levels` anchors, each a list of ten
// aliases of the one before, so the last one expands to 10^levels scalars.
std::string alias_bomb(int levels) {
  std::string text = "importer:\n  name: noop\n  config:\n    l0: &l0 lol\n";
  for (int level = 1; level <= levels; ++level) {
    std::string previous = "*l" + std::to_string(level - 1);
    text += "    l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + previous;
    text += "]\n";
  }
  return text + "exporter:\n  name: noop\n";
}

std::string refusal(const std::string& yaml) {
  try {
    convert_go_yaml_config(yaml, "/etc/conduit/conduit.yml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

// yaml-cpp makes an alias the anchored node itself: walking these recursed
// until the stack overflowed.
TEST(GoYaml, AnAliasInsideItsOwnAnchorIsRefusedAsACycle) {
  for (const std::string yaml : {
           "x: &a [*a]\n",
           "importer: &a\n  name: noop\n  config: *a\nexporter:\n  name: noop\n",
           "importer:\n  name: noop\n  config: &c {deeper: {back: *c}}\n",
           "&k [*k]: 1\n",
       }) {
    std::string message = refusal(yaml);
    EXPECT_EQ(message.rfind("/etc/conduit/conduit.yml:", 0), 0u) << yaml << message;
    EXPECT_NE(message.find("an alias refers to a node that contains it (an alias cycle)"),
              std::string::npos)
        << yaml << message;
  }
}

TEST(GoYaml, AliasExpansionIsBoundedBeforeAnyOutput) {
  // 10^6 scalars: beyond kMaxYamlNodes, yet small enough to convert fully
  // without the bound (so this fails rather than hangs without it). The
  // classic 10^9 runs through the binary in hostile_cli_test, under a deadline.
  std::string bomb = alias_bomb(6);
  ASSERT_LT(bomb.size(), 500u);
  std::string message = refusal(bomb);
  EXPECT_EQ(message.rfind("/etc/conduit/conduit.yml:", 0), 0u) << message;
  EXPECT_NE(message.find("more than 100000 YAML nodes once aliases are expanded"),
            std::string::npos)
      << message;
  // A big scalar used through aliases: few nodes, many bytes.
  std::string big(400 * 1024, 'x');
  std::string yaml = "importer:\n  name: noop\n  config:\n    a: &a " + big +
                     "\n    b: [*a, *a, *a]\nexporter:\n  name: noop\n";
  EXPECT_NE(refusal(yaml).find("bytes of values once aliases are expanded"), std::string::npos);
  // Aliases as people use them (shared defaults) still convert, expanded.
  std::string shared = convert_go_yaml_config(
      "importer:\n  name: noop\n  config: &d {x: 1, list: [a, b]}\n"
      "exporter:\n  name: noop\n  config: *d\n",
      "conduit.yml");
  EXPECT_NE(shared.find("[importer.config]\nx = 1\nlist = [ \"a\", \"b\" ]\n"), std::string::npos)
      << shared;
  EXPECT_NE(shared.find("[exporter.config]\nx = 1\nlist = [ \"a\", \"b\" ]\n"), std::string::npos)
      << shared;
}

TEST(GoYaml, NestingInputSizeAndOutputSizeAreBounded) {
  std::string deep = "importer:\n  name: noop\n  config:\n    x: " + std::string(100, '[') +
                     std::string(100, ']') + "\n";
  EXPECT_NE(refusal(deep).find("nested more than 64 levels deep"), std::string::npos);
  std::string huge = "hide-banner: true\n# " + std::string(kMaxConfigBytes, 'x') + "\n";
  EXPECT_NE(refusal(huge).find("conduit.yml: larger than 1048576 bytes"), std::string::npos);
  // No alias at all, but each '"' becomes two bytes of TOML.
  std::string quotes = "log-file: '" + std::string(700 * 1024, '"') + "'\n";
  EXPECT_NE(refusal(quotes).find("the converted configuration would be larger than 1048576 bytes"),
            std::string::npos);
}
