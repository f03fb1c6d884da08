// sd_notify (a NOTIFY_SOCKET of the test's own), the watchdog with a wedged
// plugin, and the journald sink (the journal's native protocol captured on a
// socket of the test's own, bind-mounted over /run/systemd/journal/socket in a
// private mount namespace).
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>

#include "conduit_config.h"
#include "core/checkpoint.hpp"
#include "service_support.hpp"

using namespace conduit;
using namespace conduit::test;

namespace {

// Messages whose number depends on time: watchdog pings, progress, stop extensions.
bool periodic(const std::string& message) {
  return message == "WATCHDOG=1" || message.rfind("STATUS=round ", 0) == 0 ||
         message.rfind("EXTEND_TIMEOUT_USEC=", 0) == 0;
}

class NotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    clear_service_environment();
    data_ = dir_ / "data";
    std::filesystem::create_directories(data_);
    socket_ = std::make_unique<DatagramSocket>(dir_ / "notify");
  }

  void start(const std::string& config) {
    write_text(data_ / "conduit.toml", config);
    conduit_ = std::make_unique<Subprocess>(
        std::vector<std::string>{conduit_bin(), "-d", data_.string(), "--bus", "none"},
        std::vector<std::string>{"NOTIFY_SOCKET=" + socket_->path().string(),
                                 "WATCHDOG_USEC=1000000"});
  }

  // The next message that is not periodic; every message is kept in all_.
  std::string next() {
    for (;;) {
      auto m = socket_->receive();
      if (!m) return "<nothing: " + conduit_->output() + ">";
      all_.push_back(*m);
      if (!periodic(*m)) return *m;
    }
  }
  // Waits for a message starting with `prefix`, periodic ones included.
  bool wait_for(const std::string& prefix) {
    for (;;) {
      auto m = socket_->receive();
      if (!m) return false;
      all_.push_back(*m);
      if (m->rfind(prefix, 0) == 0) return true;
    }
  }
  // After the exit: the remaining non-periodic messages.
  std::vector<std::string> rest() {
    std::vector<std::string> out;
    for (auto& m : socket_->drain()) {
      all_.push_back(m);
      if (!periodic(m)) out.push_back(m);
    }
    return out;
  }

  TempDir dir_;
  std::filesystem::path data_;
  std::unique_ptr<DatagramSocket> socket_;
  std::unique_ptr<Subprocess> conduit_;
  std::vector<std::string> all_;
};

TEST_F(NotifyTest, StartAndStopNow) {
  start(generator_config("5ms"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  ASSERT_TRUE(wait_for("WATCHDOG=1"));  // healthy
  conduit_->signal(SIGTERM);
  EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(conduit_->wait(), 0);
  auto tail = rest();
  ASSERT_EQ(tail.size(), 1u) << conduit_->output();
  EXPECT_EQ(tail[0].rfind("STATUS=stopped: stop-requested: SIGTERM from pid ", 0), 0u) << tail[0];
  EXPECT_NE(tail[0].find("requested stop (now)"), std::string::npos) << tail[0];
}

TEST_F(NotifyTest, StopAtEndOfRound) {
  start(generator_config("5ms"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  conduit_->signal(SIGUSR1);
  EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(conduit_->wait(), 0);
  auto tail = rest();
  ASSERT_EQ(tail.size(), 1u);
  EXPECT_EQ(tail[0].rfind("STATUS=stopped: stop-requested: SIGUSR1 from pid ", 0), 0u) << tail[0];
  EXPECT_NE(tail[0].find("(end-of-round)"), std::string::npos) << tail[0];
}

TEST_F(NotifyTest, Reload) {
  start(generator_config("5ms"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  conduit_->signal(SIGHUP);
  EXPECT_EQ(next(), "RELOADING=1\nSTATUS=reloading: draining to the end of the round");
  std::string ready = next();
  EXPECT_EQ(ready.rfind("READY=1\nSTATUS=running from round ", 0), 0u) << ready;
  conduit_->signal(SIGTERM);
  EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(conduit_->wait(), 0);
  EXPECT_EQ(rest().size(), 1u);
}

// A stop right behind a reload (the signals arrive
// together) is one ordinary stop: STOPPING=1 exactly once, no READY=1 after it,
// exit 0, no "reload failed" error.
TEST_F(NotifyTest, StopRightBehindAReloadStopsOnce) {
  for (int sig : {SIGTERM, SIGUSR1}) {
    SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGUSR1");
    all_.clear();
    start(generator_config("5ms"));
    std::string ready = next();  // the data dir carries the checkpoint over
    EXPECT_EQ(ready.rfind("READY=1\nSTATUS=running from round ", 0), 0u) << ready;
    conduit_->signal(SIGHUP);
    conduit_->signal(sig);
    EXPECT_EQ(conduit_->wait(), 0) << conduit_->output();
    rest();
    int stopping = 0;
    bool ready_after_stopping = false;
    for (const auto& m : all_) {
      if (m.rfind("STOPPING=1", 0) == 0) ++stopping;
      if (stopping && m.rfind("READY=1", 0) == 0) ready_after_stopping = true;
    }
    EXPECT_EQ(stopping, 1) << conduit_->output();
    EXPECT_FALSE(ready_after_stopping);
    ASSERT_FALSE(all_.empty());
    EXPECT_EQ(all_.back().rfind("STATUS=stopped: stop-requested: ", 0), 0u) << all_.back();
    EXPECT_EQ(conduit_->output().find("reload failed"), std::string::npos) << conduit_->output();
    EXPECT_EQ(conduit_->output().find("error"), std::string::npos) << conduit_->output();
  }
}

// Item 2: Stop("now") reported `stopped` without `stopping` about 1 run in 15.
TEST_F(NotifyTest, EveryStopSendsStoppingOnceBeforeTheExit) {
  for (int run = 0; run < 20; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    all_.clear();
    start(generator_config("0s"));
    std::string ready = next();  // the data dir carries the checkpoint over
    EXPECT_EQ(ready.rfind("READY=1\nSTATUS=running from round ", 0), 0u) << ready;
    conduit_->signal(run % 2 ? SIGUSR1 : SIGTERM);
    EXPECT_EQ(conduit_->wait(), 0) << conduit_->output();
    rest();
    std::vector<std::string> important;
    for (const auto& m : all_)
      if (!periodic(m) && m.rfind("STATUS=round", 0) != 0) important.push_back(m);
    ASSERT_EQ(important.size(), 3u) << conduit_->output();
    EXPECT_EQ(important[1], "STOPPING=1\nSTATUS=stopping");
    EXPECT_EQ(important[2].rfind("STATUS=stopped: stop-requested", 0), 0u) << important[2];
  }
}

TEST_F(NotifyTest, WaitingForABlockKeepsPinging) {
  // The importer waits (cancellably) for a block that is an hour away.
  start(generator_config("1h"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(wait_for("WATCHDOG=1"));
  conduit_->signal(SIGTERM);
  EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
  EXPECT_EQ(conduit_->wait(), 0);
}

#if CONDUIT_TEST_PLUGINS
// A processor that never returns from a call (no stop needed: processors never
// wait for input inside a call) stops the pings, so systemd's watchdog fires.
TEST_F(NotifyTest, WedgedProcessorStopsThePings) {
  start(generator_config(
      "0s", "[[processors]]\nname = \"wedge\"\n[processors.config]\nwedge-at-round = 3\n"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  std::string first = next();
  EXPECT_EQ(first.rfind("STATUS=wedged: processor:wedge in process() is stuck in a plugin call", 0),
            0u)
      << first;
  size_t wedged_at = all_.size();
  std::string second = next();  // a later tick: the seconds count moved on
  EXPECT_EQ(second.rfind("STATUS=wedged: processor:wedge", 0), 0u) << second;
  EXPECT_NE(first, second);
  for (size_t i = wedged_at; i < all_.size(); ++i) EXPECT_NE(all_[i], "WATCHDOG=1");
  EXPECT_TRUE(conduit_->wait_for_line("wedge: blocking at round 3"));
  // Journaled as an internal-error naming the plugin.
  EXPECT_TRUE(conduit_->wait_for_line("internal-error: processor:wedge in process() is stuck"))
      << conduit_->output();
  conduit_->signal(SIGKILL);  // what systemd's watchdog does
  EXPECT_EQ(conduit_->wait(), 128 + SIGKILL);
}

// wedge-timeout: the bound is a config key, not fixed to the
// watchdog period. A long bound keeps the pings going through the same wedge.
TEST_F(NotifyTest, WedgeTimeoutIsConfigurable) {
  start(generator_config(
      "0s", "[[processors]]\nname = \"wedge\"\n[processors.config]\nwedge-at-round = 3\n",
      "wedge-timeout = \"1h\"\n"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  ASSERT_TRUE(conduit_->wait_for_line("wedge: blocking at round 3")) << conduit_->output();
  // Pings continue (each one awaited as an event; WATCHDOG_USEC=1s, ticks at 0.5s).
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(wait_for("WATCHDOG=1"));
  for (const auto& m : all_) EXPECT_EQ(m.rfind("STATUS=wedged", 0), std::string::npos) << m;
  conduit_->signal(SIGKILL);
  EXPECT_EQ(conduit_->wait(), 128 + SIGKILL);
}

// A stop makes the wedge visible too, and a stop alone does not stop the pings
// while the plugins honour it.
TEST_F(NotifyTest, WedgedProcessorIgnoringAStop) {
  start(generator_config(
      "0s", "[[processors]]\nname = \"wedge\"\n[processors.config]\nwedge-at-round = 3\n"));
  EXPECT_EQ(next(), "READY=1\nSTATUS=running from round 0");
  ASSERT_TRUE(conduit_->wait_for_line("wedge: blocking at round 3")) << conduit_->output();
  conduit_->signal(SIGTERM);  // `now` cancels the processor call, which ignores it
  EXPECT_EQ(next(), "STOPPING=1\nSTATUS=stopping");
  std::string wedged = next();
  EXPECT_EQ(wedged.rfind("STATUS=wedged: processor:wedge", 0), 0u) << wedged;
  conduit_->signal(SIGKILL);
  EXPECT_EQ(conduit_->wait(), 128 + SIGKILL);
}
#endif

// ---------------------------------------------------------------------------
// journald

// One native-protocol datagram: KEY=VALUE lines, or KEY\n<le64 size><data>\n.
std::map<std::string, std::string> parse_journal_entry(const std::string& d) {
  std::map<std::string, std::string> fields;
  size_t pos = 0;
  while (pos < d.size()) {
    size_t nl = d.find('\n', pos);
    if (nl == std::string::npos) nl = d.size();
    std::string line = d.substr(pos, nl - pos);
    auto eq = line.find('=');
    if (eq != std::string::npos) {
      fields[line.substr(0, eq)] = line.substr(eq + 1);
      pos = nl + 1;
    } else {
      uint64_t size = 0;
      std::memcpy(&size, d.data() + nl + 1, 8);
      fields[line] = d.substr(nl + 9, size);
      pos = nl + 9 + size + 1;
    }
  }
  return fields;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root for a private mount namespace over /run/systemd/journal "
                      "(the real journal is checked by the end-to-end tests)";
    clear_service_environment();
    data_ = dir_ / "data";
    std::filesystem::create_directories(data_);
    socket_ = std::make_unique<DatagramSocket>(dir_ / "journal.socket");
  }

  // Runs conduit in its own mount namespace where sd_journal_send's socket is
  // ours; $INVOCATION_ID says "run by systemd" with log-file unset.
  std::unique_ptr<Subprocess> start(const std::string& config) {
    write_text(data_ / "conduit.toml", config);
    std::string script =
        "set -e; mount -t tmpfs tmpfs /run/systemd 2>/dev/null || "
        "{ mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }; "
        "mkdir /run/systemd/journal; touch /run/systemd/journal/socket; "
        "mount --bind \"$1\" /run/systemd/journal/socket; shift; exec \"$@\"";
    return std::make_unique<Subprocess>(
        std::vector<std::string>{"/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                                 "/bin/sh", "-c", script, "sh", socket_->path().string(),
                                 conduit_bin(), "-d", data_.string(), "--bus", "none"},
        std::vector<std::string>{"INVOCATION_ID=0123456789abcdef0123456789abcdef"});
  }

  std::map<std::string, std::string> next_entry() {
    auto m = socket_->receive();
    if (!m) return {};
    return parse_journal_entry(*m);
  }

  TempDir dir_;
  std::filesystem::path data_;
  std::unique_ptr<DatagramSocket> socket_;
};

TEST_F(JournalTest, ExpectedStopIsOneInfoEntry) {
  auto conduit = start(generator_config("5ms"));
  std::vector<std::map<std::string, std::string>> entries;
  for (;;) {
    auto e = next_entry();
    ASSERT_FALSE(e.empty()) << conduit->output();
    entries.push_back(e);
    if (e["MESSAGE"].rfind("pipeline running", 0) == 0) break;
  }
  // Wait for a progress entry: it carries CONDUIT_ROUND.
  for (;;) {
    auto e = next_entry();
    ASSERT_FALSE(e.empty()) << conduit->output();
    entries.push_back(e);
    if (e["MESSAGE"].find("exported;") != std::string::npos) {
      EXPECT_FALSE(e["CONDUIT_ROUND"].empty());
      break;
    }
  }
  conduit->signal(SIGTERM);
  EXPECT_EQ(conduit->wait(), 0) << conduit->output();
  for (auto& m : socket_->drain()) entries.push_back(parse_journal_entry(m));

  int final_entries = 0;
  for (auto& e : entries) {
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "conduit");
    EXPECT_FALSE(e["PRIORITY"].empty());
    EXPECT_NE(e["PRIORITY"], "3") << e["MESSAGE"];  // no err entry for an expected stop
    if (e.count("MESSAGE_ID")) {
      ++final_entries;
      EXPECT_EQ(e["MESSAGE_ID"], "6b0a1c7e3d2f4e58a9c1b2d3e4f5a601");
      EXPECT_EQ(e["PRIORITY"], "6");
      EXPECT_EQ(e["CONDUIT_STOP_REASON"], "stop-requested");
      EXPECT_FALSE(e["CONDUIT_ROUND"].empty());
      EXPECT_NE(e["MESSAGE"].find("SIGTERM"), std::string::npos) << e["MESSAGE"];
    }
  }
  EXPECT_EQ(final_entries, 1);
  // Nothing went to stderr: the journal sink took every line.
  EXPECT_EQ(conduit->output().find("pipeline running"), std::string::npos) << conduit->output();
}

TEST_F(JournalTest, UnexpectedStopIsOneErrEntry) {
  write_text(data_ / "metadata.json", "{ this is not json");
  auto conduit = start(generator_config("5ms"));
  EXPECT_EQ(conduit->wait(), 1) << conduit->output();
  int final_entries = 0;
  int err_entries = 0;
  for (auto& m : socket_->drain()) {
    auto e = parse_journal_entry(m);
    EXPECT_EQ(e["SYSLOG_IDENTIFIER"], "conduit");
    if (e["PRIORITY"] == "3") ++err_entries;
    if (!e.count("MESSAGE_ID")) continue;
    ++final_entries;
    EXPECT_EQ(e["MESSAGE_ID"], "e2c94f1d7a3b4c6d8e9f0a1b2c3d4e02");
    EXPECT_EQ(e["PRIORITY"], "3");
    EXPECT_EQ(e["CONDUIT_STOP_REASON"], "checkpoint-error");
    EXPECT_NE(e["MESSAGE"].find("metadata.json"), std::string::npos) << e["MESSAGE"];
  }
  EXPECT_EQ(final_entries, 1);
  EXPECT_EQ(err_entries, 1);  // the cause is not also logged at err before it
}

TEST(JournalCatalog, DocumentsBothMessageIds) {
  std::string catalog = read_text(std::filesystem::path(std::getenv("CONDUIT_SOURCE_ROOT")) /
                                  "data/catalog/conduit.catalog");
  EXPECT_NE(catalog.find("-- 6b0a1c7e3d2f4e58a9c1b2d3e4f5a601\n"), std::string::npos);
  EXPECT_NE(catalog.find("-- e2c94f1d7a3b4c6d8e9f0a1b2c3d4e02\n"), std::string::npos);
}

}  // namespace
