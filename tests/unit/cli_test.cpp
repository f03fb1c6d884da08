// The conduit binary: exit codes, the PID-file lock, `conduit stop`.
#include <gtest/gtest.h>

#include <csignal>

#include "core/checkpoint.hpp"
#include "core/config.hpp"
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
  auto [status, out] =
      run_command({conduit_bin(), "init", "-d", (dir / "d").string(), "--importer", "generator"});
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
  // Nothing running now: stopping what has stopped succeeds (as when
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

// What a conduit leaves for an instant when another stop got there first: its
// stop record written, its lock released, the file not yet removed. That stop
// is what happened: reported, exit 0, never "stale".
TEST(Cli, StopReportsTheStopThatGotThereFirst) {
  TempDir dir;
  write_text(dir / "conduit.pid", std::to_string(::getpid()) +
                                      "\nstop-requested\nSIGUSR1 from pid 1 requested stop "
                                      "(end-of-round)\n");
  auto [status, out] =
      run_command({conduit_bin(), "stop", "--pid-file", (dir / "conduit.pid").string()});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("stopped: stop-requested (SIGUSR1 from pid 1"), std::string::npos) << out;
}

// Two `conduit stop` at once (PID file and signals): both report the one stop.
TEST(Cli, TwoStopsAtOnceBothSucceed) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  for (int run = 0; run < 10; ++run) {
    SCOPED_TRACE(run);
    Subprocess daemon({conduit_bin(), "-d", dir.path().string()});
    ASSERT_TRUE(daemon.wait_for_line("pipeline running"));
    Subprocess now({conduit_bin(), "stop", "now", "-d", dir.path().string()});
    Subprocess drain({conduit_bin(), "stop", "end-of-round", "-d", dir.path().string()});
    EXPECT_EQ(now.wait(), 0) << now.output();
    EXPECT_EQ(drain.wait(), 0) << drain.output();
    EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  }
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

// Go Conduit's command line (pkg/cli): `init` without -d writes to stdout,
// -i/-p a,b/-e choose plugins (defaults algod, none, file_writer), `list KIND
// NAME` shows one plugin, singular kinds work, -v is --version.
TEST(CliGoCompat, InitWithoutDataDirPrintsGosDefaults) {
  auto [status, out] = run_command({conduit_bin(), "init"});
  EXPECT_EQ(status, 0) << out;
  TempDir dir;
  write_text(dir / "conduit.toml", out);
  Config config = load_config(dir.path());
  EXPECT_EQ(config.importer.name, "algod");
  EXPECT_TRUE(config.processors.empty());
  EXPECT_EQ(config.exporter.name, "file_writer");
  // Go writes ":8981"; conduit writes loopback (exposing it is a choice).
  EXPECT_EQ(config.api.addr, "127.0.0.1:8981");
  EXPECT_EQ(config.metrics.mode, "OFF");
  EXPECT_FALSE(std::filesystem::exists("conduit.toml")) << "nothing written";
}

TEST(CliGoCompat, InitTakesGosShortFlagsAndCommaSeparatedProcessors) {
  TempDir dir;
  auto [status, out] = run_command({conduit_bin(), "init", "-d", (dir / "d").string(), "-i",
                                    "generator", "-p", "filter_processor,noop", "-e", "noop"});
  EXPECT_EQ(status, 0) << out;
  Config config = load_config(dir / "d");
  EXPECT_EQ(config.importer.name, "generator");
  ASSERT_EQ(config.processors.size(), 2u);
  EXPECT_EQ(config.processors[0].name, "filter_processor");
  EXPECT_EQ(config.processors[1].name, "noop");
  EXPECT_EQ(config.exporter.name, "noop");
  // conduit's long forms still work, --processor repeatable.
  auto [lstatus, lout] =
      run_command({conduit_bin(), "init", "--importer", "noop", "--processor", "noop",
                   "--processor", "noop", "--processors", "noop", "--exporter", "noop"});
  EXPECT_EQ(lstatus, 0) << lout;
  write_text(dir / "conduit.toml", lout);
  EXPECT_EQ(load_config(dir.path()).processors.size(), 3u);
  // Go's message for an unknown plugin.
  auto [bad, bout] = run_command({conduit_bin(), "init", "-p", "noop,nope"});
  EXPECT_EQ(bad, 2);
  EXPECT_NE(bout.find("unknown processor name: nope"), std::string::npos) << bout;
}

TEST(CliGoCompat, ListOnePluginAndSingularKinds) {
  auto [status, out] = run_command({conduit_bin(), "list", "importers", "algod"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("netaddr"), std::string::npos) << out;
  EXPECT_EQ(out.find("file_reader"), std::string::npos) << "only the one plugin";
  auto [sstatus, sout] = run_command({conduit_bin(), "list", "processor", "filter_processor"});
  EXPECT_EQ(sstatus, 0) << sout;
  EXPECT_NE(sout.find("omit-group-transactions"), std::string::npos) << sout;
  auto [kstatus, kout] = run_command({conduit_bin(), "list", "exporter"});
  EXPECT_EQ(kstatus, 0);
  EXPECT_NE(kout.find("postgresql"), std::string::npos);
  EXPECT_EQ(kout.find("file_reader"), std::string::npos);
  auto [nstatus, nout] = run_command({conduit_bin(), "list", "importers", "nope"});
  EXPECT_EQ(nstatus, 2);
  EXPECT_NE(nout.find("Plugin not found: nope"), std::string::npos) << nout;
}

TEST(CliGoCompat, DashVIsVersion) {
  auto [status, out] = run_command({conduit_bin(), "-v"});
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, run_command({conduit_bin(), "--version"}).second);
  EXPECT_NE(out.find("conduit "), std::string::npos);
}

// A Go data dir: refused with the command that converts it; the command
// writes a conduit.toml that runs.
TEST(CliGoCompat, GoConduitYmlIsDetectedAndConverted) {
  TempDir dir;
  write_text(dir / "conduit.yml", R"(log-level: INFO
retry-count: 3
pid-filepath: go.pid
importer:
  name: generator
  config:
    txns-per-round: 2
processors:
  - name: noop
exporter:
  name: noop
telemetry:
  enabled: false
)");
  auto [status, out] = run_command({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("conduit init --from-yaml " + (dir / "conduit.yml").string()),
            std::string::npos)
      << out;
  auto [cstatus, cout] =
      run_command({conduit_bin(), "init", "--from-yaml", (dir / "conduit.yml").string()});
  EXPECT_EQ(cstatus, 0) << cout;
  Config config = load_config(dir.path());
  EXPECT_EQ(config.retry_count, 3u);
  EXPECT_EQ(config.pid_file, dir / "go.pid");
  EXPECT_EQ(config.importer.name, "generator");
  EXPECT_EQ(config.importer.config.get_uint("txns-per-round", 0), 2u);
  EXPECT_NE(read_text(dir / "conduit.toml").find("# telemetry: no equivalent"), std::string::npos);
  // It runs: the daemon starts on it and stops on SIGTERM.
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running")) << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  // Converting again refuses to overwrite.
  EXPECT_EQ(
      run_command({conduit_bin(), "init", "--from-yaml", (dir / "conduit.yml").string()}).first, 2);
}

// Keys Go accepts that do nothing here are logged as warnings at start-up.
TEST(CliGoCompat, GoOnlyKeysAreLoggedAsWarnings) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config("cpu-profile = \"/tmp/x\"\n"));
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("cpu-profile has no effect")) << daemon.output();
  ASSERT_TRUE(daemon.wait_for_line("pipeline running")) << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

// The test support's own waits end at their deadline, so a missing line or a child that never
// exits fails the test that waits instead of hanging it to meson's timeout.
TEST(TestSupport, SubprocessWaitsEndAtTheirDeadline) {
  Subprocess quiet({"/bin/sh", "-c", "echo started; exec sleep 600"});
  ASSERT_TRUE(quiet.wait_for_line("started"));
  EXPECT_FALSE(quiet.wait_for_line("never printed", std::chrono::seconds(1)));
  EXPECT_NE(quiet.output().find("no line containing \"never printed\" within 1 s"),
            std::string::npos)
      << quiet.output();
  EXPECT_EQ(quiet.wait(std::chrono::seconds(1)), 128 + SIGKILL);
  EXPECT_NE(quiet.output().find("still running after 1 s; killed"), std::string::npos)
      << quiet.output();

  Subprocess done({"/bin/sh", "-c", "echo bye; exit 3"});
  EXPECT_EQ(done.wait(), 3);
  EXPECT_EQ(done.output(), "bye\n");
}
