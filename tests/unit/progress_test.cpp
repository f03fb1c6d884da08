// The foreground progress line: on a terminal (a real pseudo-terminal
// here) one rewritten status line; through a pipe, plain log lines only.
#include <gtest/gtest.h>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>

#include "service/progress.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
using conduit::service::ProgressLine;

namespace {

std::string generator_config() {
  return "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = 5\n"
         "[exporter]\nname = \"noop\"\n";
}

// Reads the pty master until `needle` shows up (true) or the child side closes.
bool read_until(int fd, std::string& out, const std::string& needle) {
  while (out.find(needle) == std::string::npos) {
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // EIO once the last slave fd is closed
    out.append(buffer, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

TEST(ProgressLine, FormatsRoundRateAndLag) {
  EXPECT_EQ(ProgressLine::format(State::starting, std::nullopt, std::nullopt, 0, 0),
            "starting: no round exported yet");
  EXPECT_EQ(ProgressLine::format(State::running, 41, 44, 12.5, 300),
            "running: round 41 | 12.5 rounds/s | 300 txn/s | lag 3");
  // Lag unknown (no importer round seen yet): left out.
  EXPECT_EQ(ProgressLine::format(State::stopping, 7, std::nullopt, 0, 0),
            "stopping: round 7 | 0.0 rounds/s | 0 txn/s");
}

TEST(ProgressLine, TerminalGetsARewrittenStatusLine) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  std::string bin = conduit_bin(), data = dir.path().string();
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execl(bin.c_str(), bin.c_str(), "-d", data.c_str(), "--bus", "none", (char*)nullptr);
    ::_exit(127);
  }
  std::string out;
  // Two ticks: the second redraw erases the first status line in place.
  bool drawn = read_until(master, out, "running: round ") &&
               read_until(master, out, "\r\033[Krunning: round ");
  ::kill(pid, SIGTERM);
  std::string rest;
  read_until(master, rest, "\x01never");  // to EOF
  out += rest;
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::close(master);
  ASSERT_TRUE(drawn) << out;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find(" rounds/s | "), std::string::npos) << out;
  // The status line replaces the once-a-second log line, and is erased before
  // the final entry.
  EXPECT_EQ(out.find("exported; "), std::string::npos) << out;
  auto final_entry = out.find("conduit stopped: stop-requested");
  ASSERT_NE(final_entry, std::string::npos) << out;
  auto last_erase = out.rfind("\r\033[K", final_entry);
  ASSERT_NE(last_erase, std::string::npos);
  EXPECT_EQ(out.find("running: round ", last_erase), std::string::npos) << out;
}

TEST(ProgressLine, PipeGetsPlainLogLines) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line(" exported; ")) << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
  EXPECT_EQ(daemon.output().find('\033'), std::string::npos) << daemon.output();
  EXPECT_EQ(daemon.output().find('\r'), std::string::npos);
}
