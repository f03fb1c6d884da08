// The conduit binary: exit codes, the PID-file lock, `conduit stop`.
#include <gtest/gtest.h>

#include <csignal>

#include "core/checkpoint.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

std::string generator_config(const std::string& extra = "") {
  return extra + R"(
[importer]
name = "generator"
[importer.config]
txns-per-round = 10
[[processors]]
name = "noop"
[exporter]
name = "noop"
)";
}

}  // namespace

TEST(Cli, VersionAndHelp) {
  auto [status, out] = run_command({conduit_bin(), "--version"});
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("conduit "), std::string::npos);
  auto [hstatus, hout] = run_command({conduit_bin(), "--help"});
  EXPECT_EQ(hstatus, 0);
  EXPECT_NE(hout.find("stop"), std::string::npos);
}

TEST(Cli, UsageErrorsExitWith2) {
  EXPECT_EQ(run_command({conduit_bin(), "--bogus"}).first, 2);
  EXPECT_EQ(run_command({conduit_bin(), "stop", "sideways", "-d", "/tmp"}).first, 2);
  auto [status, out] = run_command({"/usr/bin/env", "-u", "CONDUIT_DATA_DIR", conduit_bin()});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("no data directory"), std::string::npos);
}

TEST(Cli, BadConfigExitsWith2BeforeAnyPluginRuns) {
  TempDir dir;
  write_text(dir / "conduit.toml", "retry-count = \"x\"\n" + generator_config());
  auto [status, out] = run_command({conduit_bin(), "-d", dir.path().string()});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("conduit.toml:1:15: retry-count: expected an integer"), std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "metadata.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "importer_generator"));
}

TEST(Cli, MissingConfigExitsWith2) {
  TempDir dir;
  auto [status, out] = run_command({conduit_bin(), "-d", dir.path().string()});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("cannot read the configuration"), std::string::npos) << out;
}

TEST(Cli, InitWritesAConfigThatRunsAndListShowsPlugins) {
  TempDir dir;
  auto [status, out] = run_command({conduit_bin(), "init", "-d", (dir / "d").string()});
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(std::filesystem::exists(dir / "d" / "conduit.toml"));
  EXPECT_EQ(run_command({conduit_bin(), "init", "-d", (dir / "d").string()}).first, 2)
      << "init refuses to overwrite";
  EXPECT_EQ(
      run_command({conduit_bin(), "init", "-d", (dir / "e").string(), "--importer", "nope"}).first,
      2);
  auto [lstatus, list] = run_command({conduit_bin(), "list"});
  EXPECT_EQ(lstatus, 0);
  for (const char* name : {"generator", "noop", "txns-per-round"})
    EXPECT_NE(list.find(name), std::string::npos) << name;
}

TEST(Cli, SigtermStopsNowSigusr1StopsAtEndOfRoundAndTheCheckpointResumes) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  uint64_t previous = 0;
  for (int sig : {SIGTERM, SIGUSR1, SIGINT}) {
    Subprocess daemon({conduit_bin(), "-d", dir.path().string()});
    ASSERT_TRUE(daemon.wait_for_line("pipeline running from round " + std::to_string(previous)))
        << daemon.output();
    daemon.signal(sig);
    EXPECT_EQ(daemon.wait(), 0) << daemon.output();
    EXPECT_NE(daemon.output().find("conduit stopped: stop-requested"), std::string::npos);
    auto next = checkpoint_round(dir.path());
    ASSERT_TRUE(next);
    EXPECT_GE(*next, previous);
    previous = *next;
    EXPECT_FALSE(std::filesystem::exists(dir / "conduit.pid")) << "PID file removed on exit";
  }
}

TEST(Cli, SecondInstanceOnTheSameDataDirExitsWith2) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess first({conduit_bin(), "-d", dir.path().string()});
  ASSERT_TRUE(first.wait_for_line("pipeline running"));
  auto [status, out] = run_command({conduit_bin(), "-d", dir.path().string()});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("another conduit is already running"), std::string::npos) << out;
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(), 0);
}

TEST(Cli, StopCommandSignalsWaitsAndPrintsTheReason) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  for (std::string mode : {"now", "end-of-round"}) {
    Subprocess daemon({conduit_bin(), "-d", dir.path().string()});
    ASSERT_TRUE(daemon.wait_for_line("pipeline running"));
    auto [status, out] = run_command({conduit_bin(), "stop", mode, "-d", dir.path().string()});
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("stopped: stop-requested"), std::string::npos) << out;
    EXPECT_NE(out.find(mode == "now" ? "SIGTERM" : "SIGUSR1"), std::string::npos) << out;
    EXPECT_EQ(daemon.wait(), 0);
  }
  // Nothing running now: stopping what has stopped succeeds (issue 13 item 1:
  // systemd runs ExecStop= after conduit exited on its own).
  auto [status, out] = run_command({conduit_bin(), "stop", "-d", dir.path().string()});
  EXPECT_EQ(status, 0);
  EXPECT_NE(out.find("no conduit is running"), std::string::npos) << out;
}

TEST(Cli, StopRefusesAStalePidFile) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  write_text(dir / "conduit.pid", std::to_string(::getpid()) + "\n");
  auto [status, out] =
      run_command({conduit_bin(), "stop", "--pid-file", (dir / "conduit.pid").string()});
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("stale PID file"), std::string::npos) << out;
  // And a daemon starts over a stale PID file.
  Subprocess daemon({conduit_bin(), "-d", dir.path().string()});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running"));
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

TEST(Cli, SighupReloadsInTheSameProcessAndABadReloadIsRefused) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess daemon({conduit_bin(), "-d", dir.path().string()});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running from round"));
  write_text(dir / "conduit.toml",
             "[importer]\nname = \"generator\"\n[exporter]\nname = \"nope\"\n");
  daemon.signal(SIGHUP);
  ASSERT_TRUE(daemon.wait_for_line("reload refused"));
  EXPECT_NE(daemon.output().find("unknown exporter 'nope'"), std::string::npos);
  write_text(dir / "conduit.toml", generator_config("log-level = \"info\"\n"));
  daemon.signal(SIGHUP);
  ASSERT_TRUE(daemon.wait_for_line("reloaded; resuming at round"));
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}
