// `conduit status` from the PID file and metadata.json (no bus), human and
// --json. The D-Bus path is covered by the service suite.
#include <gtest/gtest.h>

#include <csignal>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

using namespace conduit::test;

namespace {

std::string generator_config() {
  return "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = 5\n"
         "[exporter]\nname = \"noop\"\n";
}

}  // namespace

TEST(Status, RunningThenStoppedFromPidFileAndMetadata) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running from round")) << daemon.output();

  auto [status, out] =
      run_command({conduit_bin(), "status", "-d", dir.path().string(), "--bus", "none", "--json"});
  EXPECT_EQ(status, 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["state"], "running");
  EXPECT_EQ(j["pid"], daemon.pid());
  EXPECT_TRUE(j["next-round"].is_number_unsigned());
  EXPECT_EQ(j["network"], "generated-network");
  ASSERT_TRUE(j["uptime-seconds"].is_number()) << out;
  EXPECT_GE(j["uptime-seconds"].get<double>(), 0);
  ASSERT_TRUE(j["rounds-per-second"].is_number()) << out;
  EXPECT_GE(j["rounds-per-second"].get<double>(), 0);

  auto [hstatus, human] =
      run_command({conduit_bin(), "status", "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(hstatus, 0) << human;
  EXPECT_NE(human.find("State:     running\n"), std::string::npos) << human;
  EXPECT_NE(human.find("PID:       " + std::to_string(daemon.pid()) + "\n"), std::string::npos);
  EXPECT_NE(human.find("Uptime:    "), std::string::npos) << human;
  EXPECT_NE(human.find(" rounds/s\n"), std::string::npos) << human;

  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  auto stored = checkpoint_round(dir.path());
  ASSERT_TRUE(stored);

  auto [sstatus, stopped] =
      run_command({conduit_bin(), "status", "-d", dir.path().string(), "--bus", "none", "--json"});
  EXPECT_EQ(sstatus, 3) << stopped;
  j = nlohmann::json::parse(stopped);
  EXPECT_EQ(j["state"], "stopped");
  EXPECT_EQ(j["next-round"], *stored);
  EXPECT_TRUE(j["uptime-seconds"].is_null());
}
