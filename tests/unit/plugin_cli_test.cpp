// The conduit binary with external plugins: `list`, `init` and `plugin-check`.
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/config.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
namespace fs = std::filesystem;

namespace {

fs::path source_root() {
  const char* env = std::getenv("CONDUIT_SOURCE_ROOT");
  return env ? env : ".";
}

// The scripted test plugin as DIR/plugins/NAME (its kind is NAME's last part).
fs::path install_scripted(const fs::path& data_dir, const std::string& name) {
  fs::create_directories(data_dir / "plugins");
  fs::path path = data_dir / "plugins" / name;
  fs::copy_file(source_root() / "tests/plugins/scripted_plugin.py", path,
                fs::copy_options::overwrite_existing);
  fs::permissions(path, fs::perms::owner_all, fs::perm_options::add);
  return path;
}

bool has_line(const std::string& out, const std::string& prefix) {
  return out.starts_with(prefix) || out.find("\n" + prefix) != std::string::npos;
}

// plugin-check on `plugin` passes; with the fixtures too when there are some.
void expect_plugin_check_passes(const fs::path& plugin, const std::string& config_text) {
  TempDir dir;
  std::vector<std::string> argv = {conduit_bin(), "plugin-check", plugin.string()};
  if (!config_text.empty()) {
    write_text(dir / "config.toml", config_text);
    argv.insert(argv.end(), {"--config", (dir / "config.toml").string()});
  }
  auto [status, out] = run_command(argv);
  EXPECT_EQ(status, 0) << out;
  EXPECT_FALSE(has_line(out, "FAIL ")) << out;
  EXPECT_NE(out.find(" checks passed, 0 failed, "), std::string::npos) << out;
  fs::path fixtures = fixtures_dir();
  if (fixtures.empty() || !fs::exists(fixtures / "genesis.json")) return;
  argv.insert(argv.end(), {"--fixtures", fixtures.string()});
  auto [fstatus, fout] = run_command(argv);
  EXPECT_EQ(fstatus, 0) << fout;
  EXPECT_FALSE(has_line(fout, "FAIL ")) << fout;
}

}  // namespace

TEST(PluginCli, ListShowsExternalPluginsWithTheirPath) {
  TempDir dir;
  fs::path path = install_scripted(dir.path(), "ext_exporter");
  auto [status, out] = run_command({conduit_bin(), "list", "-d", dir.path().string()});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("ext_exporter"), std::string::npos) << out;
  EXPECT_NE(out.find("(" + path.string() + ")"), std::string::npos) << out;
  EXPECT_NE(out.find("(built-in)"), std::string::npos) << out;
  // Only under exporters.
  auto [pstatus, pout] =
      run_command({conduit_bin(), "list", "processors", "-d", dir.path().string()});
  EXPECT_EQ(pstatus, 0);
  EXPECT_EQ(pout.find("ext_exporter"), std::string::npos) << pout;
}

TEST(PluginCli, ListOneExternalPluginPrintsItsSampleConfig) {
  TempDir dir;
  install_scripted(dir.path(), "ext_exporter");
  auto [status, out] =
      run_command({conduit_bin(), "list", "exporters", "ext_exporter", "-d", dir.path().string()});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("log = \"scripted.log\""), std::string::npos) << out;
}

TEST(PluginCli, ABrokenPluginIsReportedAndTheListingGoesOn) {
  TempDir dir;
  install_scripted(dir.path(), "ext_exporter");
  write_text(dir / "plugins" / "silent_exporter", "#!/bin/sh\necho not-a-frame\n");
  fs::permissions(dir / "plugins" / "silent_exporter", fs::perms::owner_all, fs::perm_options::add);
  auto [status, out] = run_command({conduit_bin(), "list", "-d", dir.path().string()});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find((dir / "plugins" / "silent_exporter").string() + ": "), std::string::npos)
      << out;
  EXPECT_NE(out.find("ext_exporter"), std::string::npos) << out;
  auto [one, oout] = run_command(
      {conduit_bin(), "list", "exporters", "silent_exporter", "-d", dir.path().string()});
  EXPECT_EQ(one, 2) << oout;
  EXPECT_NE(oout.find("silent_exporter"), std::string::npos) << oout;
}

TEST(PluginCli, InitWritesAnExternalPluginsSectionThatLoads) {
  TempDir dir;
  install_scripted(dir.path(), "ext_exporter");
  install_scripted(dir.path(), "ext_processor");
  auto [status, out] = run_command({conduit_bin(), "init", "-d", dir.path().string(), "-i",
                                    "generator", "-p", "ext_processor", "-e", "ext_exporter"});
  ASSERT_EQ(status, 0) << out;
  Config config = load_config(dir.path());
  EXPECT_EQ(config.exporter.name, "ext_exporter");
  ASSERT_EQ(config.processors.size(), 1u);
  EXPECT_EQ(config.processors[0].name, "ext_processor");
  EXPECT_NE(read_text(dir / "conduit.toml").find("[exporter.config]\n# where to log\nlog ="),
            std::string::npos);
  // A plugin of another kind than the flag asks for.
  auto [wrong, wout] = run_command(
      {conduit_bin(), "init", "-d", dir.path().string(), "--force", "-e", "ext_processor"});
  EXPECT_EQ(wrong, 2) << wout;
  EXPECT_NE(wout.find("is a processor, not an exporter"), std::string::npos) << wout;
}

TEST(PluginCli, MissingOrNonExecutablePluginsExitWith2NamingThePath) {
  TempDir dir;
  fs::create_directories(dir / "plugins");
  write_text(dir / "plugins" / "plain_exporter", "#!/bin/sh\n");
  auto [status, out] =
      run_command({conduit_bin(), "init", "-d", dir.path().string(), "-e", "plain_exporter"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find((dir / "plugins" / "plain_exporter").string() + ": not executable"),
            std::string::npos)
      << out;
  auto [lstatus, lout] = run_command(
      {conduit_bin(), "list", "exporters", "plain_exporter", "-d", dir.path().string()});
  EXPECT_EQ(lstatus, 2) << lout;
  EXPECT_NE(lout.find("not executable"), std::string::npos) << lout;
  auto [mstatus, mout] =
      run_command({conduit_bin(), "init", "-d", dir.path().string(), "-e", "missing_exporter"});
  EXPECT_EQ(mstatus, 2) << mout;
  EXPECT_NE(mout.find("unknown exporter name: missing_exporter"), std::string::npos) << mout;
  EXPECT_NE(mout.find((dir / "plugins").string()), std::string::npos)
      << "where it looked: " << mout;
}

TEST(PluginCheck, NdjsonExporterPasses) {
  expect_plugin_check_passes(source_root() / "examples/plugins/ndjson_exporter",
                             "path = \"rounds.ndjson\"\n");
}

TEST(PluginCheck, DropTypeProcessorPasses) {
  expect_plugin_check_passes(source_root() / "examples/plugins/drop_type_processor",
                             "type = \"pay\"\n");
}

TEST(PluginCheck, StripNoteProcessorPasses) {
  const char* exe = std::getenv("CONDUIT_STRIP_NOTE_PROCESSOR");
  if (!exe) GTEST_SKIP() << "CONDUIT_STRIP_NOTE_PROCESSOR not set";
  expect_plugin_check_passes(exe, "");
}

TEST(PluginCheck, ABrokenPluginFails) {
  TempDir dir;
  // Answers hello with a protocol version conduit does not speak.
  fs::path plugin = dir / "broken_exporter";
  write_text(plugin, "#!/bin/sh\nread line\necho '{\"type\":\"hello\",\"protocol\":7}'\n");
  fs::permissions(plugin, fs::perms::owner_all, fs::perm_options::add);
  auto [status, out] = run_command({conduit_bin(), "plugin-check", plugin.string()});
  EXPECT_EQ(status, 1) << out;
  EXPECT_TRUE(has_line(out, "FAIL hello: ")) << out;
  EXPECT_NE(out.find("0 checks passed, 1 failed, 0 warnings"), std::string::npos) << out;
}

TEST(PluginCheck, UsageErrorsExitWith2) {
  EXPECT_EQ(run_command({conduit_bin(), "plugin-check"}).first, 2);
  EXPECT_EQ(run_command({conduit_bin(), "plugin-check", "/nonexistent/plugin"}).first, 2);
  TempDir dir;
  write_text(dir / "bad.toml", "path = \n");
  auto [status, out] = run_command({conduit_bin(), "plugin-check",
                                    (source_root() / "examples/plugins/ndjson_exporter").string(),
                                    "--config", (dir / "bad.toml").string()});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("bad.toml:1"), std::string::npos) << out;
}
