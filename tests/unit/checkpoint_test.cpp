#include <gtest/gtest.h>

#include <sys/stat.h>

#include "core/checkpoint.hpp"
#include "core/fs.hpp"
#include "core/pidfile.hpp"
#include "test_support.hpp"

using namespace conduit;

TEST(Checkpoint, FirstRunHasNone) {
  test::TempDir dir;
  EXPECT_FALSE(Checkpoint(dir.path()).load());
}

TEST(Checkpoint, StoreThenLoadRoundTrips) {
  test::TempDir dir;
  Checkpoint cp(dir.path());
  cp.store({"aGFzaA==", "mainnet", 42});
  auto m = cp.load();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->genesis_hash, "aGFzaA==");
  EXPECT_EQ(m->network, "mainnet");
  EXPECT_EQ(m->next_round, 42u);
  // Go Conduit's field names, and no temp file left behind.
  auto text = test::read_text(dir / "metadata.json");
  EXPECT_NE(text.find("\"next-round\":42"), std::string::npos);
  EXPECT_NE(text.find("\"genesis-hash\""), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "metadata.json.tmp"));
}

TEST(Checkpoint, CorruptFileIsAnError) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json", "{\"next-round\": ");
  EXPECT_THROW(Checkpoint(dir.path()).load(), CheckpointError);
}

TEST(Checkpoint, UnwritableDirectoryIsAnError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  test::TempDir dir;
  ::chmod(dir.path().c_str(), 0500);
  EXPECT_THROW(Checkpoint(dir.path()).store({"", "", 1}), CheckpointError);
  ::chmod(dir.path().c_str(), 0700);
}

TEST(InstanceLock, SecondInstanceOnSameDataDirIsRefused) {
  test::TempDir dir;
  InstanceLock first(dir.path(), dir / "conduit.pid");
  EXPECT_THROW(InstanceLock(dir.path(), dir / "other.pid"), AlreadyRunning);
  // The lock is a POSIX record lock, invisible to its own process: the
  // holder check is in hostile_cli_test (a daemon and `conduit stop`).
  EXPECT_EQ(std::stoi(test::read_text(dir / "conduit.pid")), ::getpid());
}

TEST(InstanceLock, ReleaseRecordsTheStopCauseAndRemovesTheFile) {
  test::TempDir dir;
  auto lock = std::make_unique<InstanceLock>(dir.path(), dir / "conduit.pid");
  auto info = probe_pid_file(dir / "conduit.pid");
  ASSERT_TRUE(info);
  lock->release({StopReason::exporter_error, "exporter:x failed at round 7"});
  EXPECT_FALSE(std::filesystem::exists(dir / "conduit.pid"));
  auto cause = read_stop_record(*info);
  ASSERT_TRUE(cause);
  EXPECT_EQ(cause->reason, StopReason::exporter_error);
  EXPECT_EQ(cause->detail, "exporter:x failed at round 7");
  // The lock is gone: a new instance may start.
  InstanceLock again(dir.path(), dir / "conduit.pid");
}

TEST(InstanceLock, StalePidFileIsDetectedAndReplaced) {
  test::TempDir dir;
  test::write_text(dir / "conduit.pid", "999999\n");
  auto info = probe_pid_file(dir / "conduit.pid");
  ASSERT_TRUE(info);
  EXPECT_FALSE(info->held);
  EXPECT_EQ(info->pid, 999999);
  InstanceLock lock(dir.path(), dir / "conduit.pid");
  EXPECT_EQ(std::stoi(test::read_text(dir / "conduit.pid")), ::getpid());
}

TEST(AtomicReplace, LeavesOldContentWhenTheWriteFails) {
  test::TempDir dir;
  replace_file_atomically(dir / "f", "old");
  EXPECT_THROW(replace_file_atomically(dir / "missing-dir" / "f", "new"), std::system_error);
  EXPECT_EQ(test::read_text(dir / "f"), "old");
}
