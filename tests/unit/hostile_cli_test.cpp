// Hostile input through the conduit binary: a hostile conduit.toml, a planted PID
// file, a relative -d, the round counter's end, the HTTP server under hostile
// clients and its prompt shutdown, and messages that keep their cause.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

#include "core/fs.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
using namespace std::chrono_literals;

namespace {

std::string generator_config(const std::string& extra = "", const std::string& exporter = "") {
  return extra + R"(
[importer]
name = "generator"
[importer.config]
txns-per-round = 2
)" + (exporter.empty() ? "[exporter]\nname = \"noop\"\n" : exporter);
}

std::string deep_dotted_key() {
  std::string key = "a";
  for (int i = 0; i < 50000; ++i) key += ".a";
  return key + " = 1\n";
}

// The exit status of `process` if it exits within `deadline`, else nullopt.
std::optional<int> exit_within(Subprocess& process, std::chrono::milliseconds deadline) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, process.pid(), 0)));
  if (!pidfd) return process.wait();  // already reaped
  pollfd pfd{pidfd.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, static_cast<int>(deadline.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return std::nullopt;
  return process.wait();
}

bool still_running(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

UniqueFd connect_loopback(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{30, 0};  // every read below has a deadline
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    ADD_FAILURE() << "connect to port " << port << ": " << std::strerror(errno);
  return fd;
}

// Sends `request` and reads the response until the server closes.
std::string http_exchange(int port, const std::string& request) {
  UniqueFd fd = connect_loopback(port);
  (void)!::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL);
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd.get(), buffer, sizeof buffer, 0)) > 0;)
    response.append(buffer, static_cast<size_t>(n));
  return response;
}

int port_from_log(const Subprocess& daemon, const std::string& what) {
  std::string out = daemon.output();
  auto at = out.find("serving " + what + " on 127.0.0.1:");
  if (at == std::string::npos) return 0;
  return std::stoi(out.substr(at + what.size() + 22));
}

}  // namespace

// Item 1: SIGSEGV (exit 139) on main for the daemon, `status` and `stop`.
TEST(HostileConfig, DeepNestingExitsWith2WithALocationAndStatusAndStopSurvive) {
  TempDir dir;
  write_text(dir / "conduit.toml", deep_dotted_key());
  auto [status, out] = run_command({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(status, 2) << out.substr(0, 300);
  EXPECT_NE(out.find("conduit.toml:1:128: nested more than 64 levels deep"), std::string::npos)
      << out.substr(0, 300);
  auto [status_status, status_out] =
      run_command({conduit_bin(), "status", "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(status_status, 3) << status_out.substr(0, 300);
  auto [stop_status, stop_out] =
      run_command({conduit_bin(), "stop", "-d", dir.path().string(), "--bus", "none"});
  // Nothing runs: stopping what has already stopped succeeds (conduit(1)).
  EXPECT_EQ(stop_status, 0) << stop_out.substr(0, 300);
  EXPECT_NE(stop_out.find("no conduit is running"), std::string::npos) << stop_out.substr(0, 300);
}

// Item 1: on main the reload killed the running service (and systemd restarted
// it into the same crash).
TEST(HostileConfig, AReloadWithDeepNestingIsRefusedAndThePipelineKeepsRunning) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running from round"));
  write_text(dir / "conduit.toml", "[" + deep_dotted_key());
  daemon.signal(SIGHUP);
  ASSERT_TRUE(daemon.wait_for_line("reload refused")) << daemon.output();
  EXPECT_NE(daemon.output().find("nested more than 64 levels deep"), std::string::npos);
  // Still the same running pipeline: a requested stop ends it normally.
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0) << daemon.output();
  EXPECT_NE(daemon.output().find("conduit stopped: stop-requested"), std::string::npos);
}

// Item 2: a PID file naming another process, locked by someone else.
TEST(HostileStop, SignalsNobodyWhenTheLockHolderIsNotThePidInTheFile) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess victim({"/bin/sleep", "600"});
  write_text(dir / "conduit.pid", std::to_string(victim.pid()) + "\n");

  {  // flock(1) from a shell, as in the report
    UniqueFd held(::open((dir / "conduit.pid").c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_EQ(::flock(held.get(), LOCK_EX), 0);
    auto [status, out] =
        run_command({conduit_bin(), "stop", "-d", dir.path().string(), "--bus", "none"});
    EXPECT_EQ(status, 1) << out;
    EXPECT_NE(out.find("not signalling"), std::string::npos) << out;
    EXPECT_TRUE(still_running(victim.pid())) << out;
  }
  {  // a POSIX record lock held by a process other than the one named
    UniqueFd held(::open((dir / "conduit.pid").c_str(), O_RDWR | O_CLOEXEC));
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    ASSERT_EQ(::fcntl(held.get(), F_SETLK, &lock), 0);
    auto [status, out] =
        run_command({conduit_bin(), "stop", "-d", dir.path().string(), "--bus", "none"});
    EXPECT_EQ(status, 1) << out;
    EXPECT_NE(out.find("names pid " + std::to_string(victim.pid()) +
                       " but its lock is held by pid " + std::to_string(::getpid())),
              std::string::npos)
        << out;
    EXPECT_TRUE(still_running(victim.pid())) << out;
  }
  // Nobody signalled it: it dies of our SIGKILL, not of a SIGTERM.
  victim.signal(SIGKILL);
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);

  // The real conduit is still stopped by `conduit stop`, the holder being its PID.
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running"));
  auto [status, out] =
      run_command({conduit_bin(), "stop", "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(daemon.wait(), 0);
}

// Item 10: a relative -d put the PID file at DIR/DIR/conduit.pid.
TEST(HostileDataDir, ARelativeDataDirIsMadeAbsoluteOnce) {
  TempDir dir;
  std::filesystem::create_directory(dir / "rel");
  write_text(dir / "rel" / "conduit.toml", generator_config());
  Subprocess daemon(
      {"/bin/sh", "-c",
       "cd '" + dir.path().string() + "' && exec '" + conduit_bin() + "' -d rel --bus none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running"));
  EXPECT_TRUE(std::filesystem::exists(dir / "rel" / "conduit.pid"));
  EXPECT_FALSE(std::filesystem::exists(dir / "rel" / "rel"));
  auto [status, out] =
      run_command({conduit_bin(), "stop", "-d", (dir / "rel").string(), "--bus", "none"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("stopped: stop-requested"), std::string::npos) << out;
  if (status != 0) daemon.signal(SIGTERM);  // not stopped by `conduit stop`: do not hang
  EXPECT_EQ(daemon.wait(), 0);
}

// Item 5: -r takes only non-negative integers that fit in 64 bits.
TEST(HostileRounds, NextRoundOverrideMustBeANonNegative64BitInteger) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  for (std::string bad : {"-1", "18446744073709551616", "1e3", "0x10", "", " 5"}) {
    Subprocess run({conduit_bin(), "-d", dir.path().string(), "--bus", "none", "-r", bad});
    auto status = exit_within(run, 60s);  // main accepted -1 and ran from round 2^64-1
    EXPECT_EQ(status, std::optional<int>(2)) << "-r '" << bad << "': " << run.output();
    if (!status) continue;
    EXPECT_NE(run.output().find("must be an integer in [0, 18446744073709551615]"),
              std::string::npos)
        << run.output();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "metadata.json"));
}

// Item 5: from a checkpoint at 2^64-2, main exported ...614, ...615, 0, 1, 2.
TEST(HostileRounds, ThePipelineStopsAtTheLargestRoundInsteadOfWrapping) {
  TempDir dir;
  write_text(dir / "conduit.toml",
             generator_config(
                 "",
                 // (still [importer.config]) no balances to replay from genesis up to 2^64
                 "state-delta = false\n"
                 "[exporter]\nname = \"file_writer\"\n[exporter.config]\n"
                 "block-dir = \"" +
                     (dir / "out").string() + "\"\nfilename-pattern = \"%[1]d_block.json\"\n"));
  write_text(dir / "metadata.json", "{\"next-round\":18446744073709551614}");
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  auto status = exit_within(daemon, 120s);
  ASSERT_TRUE(status) << "still running: it wrapped around";
  EXPECT_EQ(*status, 1) << daemon.output();
  EXPECT_NE(daemon.output().find("past the largest round a checkpoint can name"), std::string::npos)
      << daemon.output();
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "0_block.json"));
  auto next = checkpoint_round(dir.path());
  ASSERT_TRUE(next);
  EXPECT_GE(*next, UINT64_MAX - 1);

  auto [override_status, out] = run_command(
      {conduit_bin(), "-d", dir.path().string(), "--bus", "none", "-r", "18446744073709551615"});
  EXPECT_EQ(override_status, 1) << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "0_block.json"));
}

// Item 11: the port in use names its errno.
TEST(HostileMessages, AnApiPortInUseNamesTheCause) {
  UniqueFd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(taken.get(), 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&address), &length);
  int port = ntohs(address.sin_port);

  TempDir dir;
  write_text(dir / "conduit.toml",
             generator_config("[api]\naddr = \"127.0.0.1:" + std::to_string(port) + "\"\n"));
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("cannot listen on"));
  EXPECT_NE(daemon.output().find("cannot listen on 127.0.0.1:" + std::to_string(port) +
                                 ": Address already in use"),
            std::string::npos)
      << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

// Item 3: methods, sizes and bodies are bounded; the answer comes at once.
TEST(HostileHttp, OnlyBoundedGetAndHeadRequestsAreServed) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config("[api]\naddr = \"127.0.0.1:0\"\n"));
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("serving /health on"));
  int port = port_from_log(daemon, "/health");
  ASSERT_GT(port, 0) << daemon.output();

  std::string ok = http_exchange(port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("\"state\""), std::string::npos) << ok;
  std::string head = http_exchange(port, "HEAD /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  EXPECT_EQ(head.find("\"state\""), std::string::npos) << "HEAD has no body: " << head;
  // A 4 GB body announced: refused before any of it is read.
  std::string post =
      http_exchange(port, "POST /health HTTP/1.1\r\nContent-Length: 4000000000\r\n\r\nxxxx");
  EXPECT_EQ(post.rfind("HTTP/1.1 405 ", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos) << post;
  std::string body = http_exchange(port, "GET /health HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(body.rfind("HTTP/1.1 413 ", 0), 0u) << body;
  std::string big = http_exchange(port, "GET /health HTTP/1.1\r\nX-Big: " + std::string(9000, 'b'));
  EXPECT_EQ(big.rfind("HTTP/1.1 431 ", 0), 0u) << big;
  std::string missing = http_exchange(port, "GET /nope HTTP/1.1\r\n\r\n");
  EXPECT_EQ(missing.rfind("HTTP/1.1 404 ", 0), 0u) << missing;
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

// A dozen clients trickling one header line at a
// time neither stall /health nor keep the process alive after a stop.
TEST(HostileHttp, SlowClientsNeitherStallHealthNorDelayTheExit) {
  TempDir dir;
  write_text(dir / "conduit.toml",
             generator_config("[api]\naddr = \"127.0.0.1:0\"\n"
                              "[metrics]\nmode = \"ON\"\naddr = \"127.0.0.1:0\"\n"));
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("serving /metrics on"));
  int health_port = port_from_log(daemon, "/health");
  int metrics_port = port_from_log(daemon, "/metrics");
  ASSERT_GT(health_port, 0);
  ASSERT_GT(metrics_port, 0);

  // The clients trickle until their own deadline; the daemon must exit before it.
  auto clients_deadline = std::chrono::steady_clock::now() + 90s;
  std::atomic<int> connected{0};
  std::vector<std::jthread> clients;
  for (int i = 0; i < 12; ++i)
    clients.emplace_back([&, i](std::stop_token stop) {
      UniqueFd fd = connect_loopback(i % 2 ? metrics_port : health_port);
      std::string first = std::string("GET ") + (i % 2 ? "/metrics" : "/health") + " HTTP/1.1\r\n";
      (void)!::send(fd.get(), first.data(), first.size(), MSG_NOSIGNAL);
      ++connected;
      connected.notify_all();
      while (!stop.stop_requested() && std::chrono::steady_clock::now() < clients_deadline) {
        std::string line = "X-Slow: " + std::to_string(i) + "\r\n";
        if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) < 0) break;
        std::this_thread::sleep_for(1s);  // the load pattern: one header line a second
      }
    });
  for (int n = connected.load(); n < 12; n = connected.load()) connected.wait(n);

  std::string ok = http_exchange(health_port, "GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;

  daemon.signal(SIGTERM);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      clients_deadline - std::chrono::steady_clock::now());
  auto status = exit_within(daemon, left);
  EXPECT_TRUE(status) << "the daemon outlived its slow clients' deadline";
  if (status) {
    EXPECT_EQ(*status, 0) << daemon.output();
  }
  for (auto& client : clients) client.request_stop();
}

// Items 4 and 12 through the daemon: a corrupt checkpoint stops it untouched;
// an empty one is a first run with a warning, as in Go Conduit.
TEST(HostileCheckpoint, ACorruptCheckpointIsRefusedAndAnEmptyOneIsAFirstRun) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  std::string corrupt = "{\"genesis-hash\":\"\",\"network\":\"\",\"next-round\":1e30}\n";
  write_text(dir / "metadata.json", corrupt);
  Subprocess refused({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  auto status = exit_within(refused, 60s);  // main read it as round 0 and ran on
  ASSERT_TRUE(status) << refused.output();
  EXPECT_EQ(*status, 1) << refused.output();
  EXPECT_NE(refused.output().find("conduit stopped: checkpoint-error"), std::string::npos)
      << refused.output();
  EXPECT_EQ(read_text(dir / "metadata.json"), corrupt);

  write_text(dir / "metadata.json", "");
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running from round 0")) << daemon.output();
  EXPECT_NE(daemon.output().find("metadata.json is empty; treated as absent"), std::string::npos)
      << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

// Item 2's neighbour: a symlink planted as conduit.pid made root's daemon
// truncate its target on main.
TEST(HostileStop, APidFileSymlinkIsNotFollowed) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  write_text(dir / "precious", "precious\n");
  std::filesystem::create_symlink(dir / "precious", dir / "conduit.pid");
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  auto status = exit_within(daemon, 60s);
  ASSERT_TRUE(status) << daemon.output();
  EXPECT_EQ(*status, 2) << daemon.output();
  EXPECT_NE(daemon.output().find("Too many levels of symbolic links"), std::string::npos)
      << daemon.output();
  EXPECT_EQ(read_text(dir / "precious"), "precious\n");
  auto [stop_status, out] =
      run_command({conduit_bin(), "stop", "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(stop_status, 1) << out;
}

// Item 3: more idle connections than the server keeps: the oldest idle one
// makes room, so /health is still answered.
TEST(HostileHttp, MoreIdleConnectionsThanTheLimitDoNotStarveHealth) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config("[api]\naddr = \"127.0.0.1:0\"\n"));
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("serving /health on"));
  int port = port_from_log(daemon, "/health");
  ASSERT_GT(port, 0);
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(connect_loopback(port));
  std::string ok = http_exchange(port, "GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  // The first idle connections were closed to make room.
  char byte;
  EXPECT_EQ(::recv(idle.front().get(), &byte, 1, 0), 0);
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(), 0);
}

// ---------------------------------------------------------------------------
// Hostile files: alias cycles and bombs in a conduit.yml, and FIFOs or devices
// where conduit expects a regular file. Every wait below is bounded by
// kHangGuard: on a hang the child is killed and the test fails instead of
// hanging; it is a guard, not a timing expectation.

namespace {

constexpr auto kHangGuard = 60s;

void make_fifo(const std::filesystem::path& path) {
  std::filesystem::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path << ": " << std::strerror(errno);
}

std::string yaml_bomb() {  // 10^9 scalars once expanded, in 500 bytes
  std::string text = "importer:\n  name: noop\n  config:\n    l0: &l0 lol\n";
  for (int level = 1; level <= 9; ++level) {
    std::string previous = "*l" + std::to_string(level - 1);
    text += "    l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 10; ++i) text += (i ? ", " : "") + previous;
    text += "]\n";
  }
  return text + "exporter:\n  name: noop\n";
}

// `conduit init --from-yaml FILE -d OUT`: {exit status, output}; a hang is killed.
std::pair<int, std::string> init_from_yaml(const std::filesystem::path& file,
                                           const std::filesystem::path& out) {
  Subprocess init({conduit_bin(), "init", "--from-yaml", file.string(), "-d", out.string()});
  int status = init.wait(kHangGuard);
  return {status, init.output()};
}

std::string file_reader_config(const std::filesystem::path& blocks) {
  return "[importer]\nname = \"file_reader\"\n[importer.config]\nblock-dir = \"" + blocks.string() +
         "\"\nmissing-file-wait = \"0s\"\n[exporter]\nname = \"noop\"\n";
}

}  // namespace

// A SIGSEGV (exit 139) before: the converter recursed through the cycle.
TEST(HostileYaml, AnAliasCycleExits2NamingTheFile) {
  TempDir dir;
  for (const std::string yaml : {
           "x: &a [*a]\n",
           "importer: &a\n  name: noop\n  config: *a\nexporter:\n  name: noop\n",
       }) {
    write_text(dir / "conduit.yml", yaml);
    auto [status, out] = init_from_yaml(dir / "conduit.yml", dir / "out");
    EXPECT_EQ(status, 2) << yaml << out;
    EXPECT_NE(out.find((dir / "conduit.yml").string() + ":"), std::string::npos) << out;
    EXPECT_NE(out.find("(an alias cycle)"), std::string::npos) << out;
    EXPECT_FALSE(std::filesystem::exists(dir / "out" / "conduit.toml"));
  }
}

// Before: an 82.7 MB conduit.toml, or 1.5 GB of memory and an abort (exit 134).
TEST(HostileYaml, AnAliasBombExits2AndWritesNothing) {
  TempDir dir;
  write_text(dir / "conduit.yml", yaml_bomb());
  auto [status, out] = init_from_yaml(dir / "conduit.yml", dir / "out");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find((dir / "conduit.yml").string() + ":"), std::string::npos) << out;
  EXPECT_NE(out.find("more than 100000 YAML nodes once aliases are expanded"), std::string::npos)
      << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "conduit.toml"));
}

// Before: /dev/zero was read until allocation failed, and a FIFO blocked open().
TEST(HostileYaml, ADeviceOrAFifoIsRefusedWithoutReadingIt) {
  TempDir dir;
  auto [zero_status, zero_out] = init_from_yaml("/dev/zero", dir / "out");
  EXPECT_EQ(zero_status, 2) << zero_out;
  EXPECT_NE(zero_out.find("/dev/zero: not a regular file (a character device)"), std::string::npos)
      << zero_out;
  make_fifo(dir / "conduit.yml");
  auto [fifo_status, fifo_out] = init_from_yaml(dir / "conduit.yml", dir / "out");
  EXPECT_EQ(fifo_status, 2) << fifo_out;
  EXPECT_NE(fifo_out.find((dir / "conduit.yml").string() + ": not a regular file (a FIFO)"),
            std::string::npos)
      << fifo_out;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "conduit.toml"));
}

// Before: open() blocked with the signals already blocked; only SIGKILL ended it.
TEST(HostileFiles, AFifoAsConduitTomlOrLogFileExits2) {
  TempDir dir;
  make_fifo(dir / "conduit.toml");
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(daemon.wait(kHangGuard), 2) << daemon.output();
  EXPECT_NE(daemon.output().find((dir / "conduit.toml").string() +
                                 ": cannot read the configuration: not a regular file (a FIFO)"),
            std::string::npos)
      << daemon.output();

  make_fifo(dir / "conduit.log");
  std::filesystem::remove(dir / "conduit.toml");
  write_text(dir / "conduit.toml",
             generator_config("log-file = \"" + (dir / "conduit.log").string() + "\"\n"));
  Subprocess logging({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(logging.wait(kHangGuard), 2) << logging.output();
  EXPECT_NE(logging.output().find("cannot open log-file " + (dir / "conduit.log").string() +
                                  ": not a regular file (a FIFO)"),
            std::string::npos)
      << logging.output();
}

TEST(HostileFiles, AFifoAsTheCheckpointIsACheckpointError) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  make_fifo(dir / "metadata.json");
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  EXPECT_EQ(daemon.wait(kHangGuard), 1) << daemon.output();
  EXPECT_NE(daemon.output().find("conduit stopped: checkpoint-error"), std::string::npos)
      << daemon.output();
  EXPECT_NE(daemon.output().find((dir / "metadata.json").string() +
                                 ": unreadable checkpoint: not a regular file (a FIFO)"),
            std::string::npos)
      << daemon.output();
}

// file_reader: genesis.json or a block file as a FIFO is an importer error
// naming it; before, the open blocked and a SIGTERM was logged but never acted on.
TEST(HostileFiles, AFifoInFileReadersBlockDirIsAnImporterError) {
  CONDUIT_REQUIRE_FIXTURES();
  for (const std::string name : {"genesis.json", "0_block.msgp.gz"}) {
    TempDir dir;
    std::filesystem::create_directory(dir / "blocks");
    std::filesystem::copy_file(fixtures_dir() / "genesis.json", dir / "blocks" / "genesis.json");
    make_fifo(dir / "blocks" / name);
    write_text(dir / "conduit.toml", file_reader_config(dir / "blocks"));
    Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
    EXPECT_EQ(daemon.wait(kHangGuard), 1) << name << daemon.output();
    EXPECT_NE(daemon.output().find("conduit stopped: importer-error"), std::string::npos)
        << daemon.output();
    EXPECT_NE(
        daemon.output().find((dir / "blocks" / name).string() + ": not a regular file (a FIFO)"),
        std::string::npos)
        << daemon.output();
  }
}

// Before: the SIGHUP handler blocked in open() on the event loop: rounds went
// on, but no signal (SIGTERM included) or D-Bus call was handled any more.
TEST(HostileFiles, AReloadOfAFifoConfigIsRefusedAndTheLoopStillServesSignals) {
  TempDir dir;
  write_text(dir / "conduit.toml", generator_config());
  Subprocess daemon({conduit_bin(), "-d", dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(daemon.wait_for_line("pipeline running from round", kHangGuard)) << daemon.output();
  make_fifo(dir / "conduit.toml");
  daemon.signal(SIGHUP);
  ASSERT_TRUE(daemon.wait_for_line("reload refused", kHangGuard)) << daemon.output();
  EXPECT_NE(daemon.output().find("not a regular file (a FIFO)"), std::string::npos)
      << daemon.output();
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(kHangGuard), 0) << daemon.output();
  EXPECT_NE(daemon.output().find("conduit stopped: stop-requested"), std::string::npos);
}
