// Time from SIGTERM to exit while conduit's algod importer is blocked in a
// long-poll (GET /v2/status/wait-for-block-after). A fake algod (the test
// suite's, a real HTTP server on 127.0.0.1) never answers that long-poll, so
// the figure is how fast a stop wakes the importer and the daemon shuts down.
//
//   bench_algod_sigterm CONDUIT_BINARY [RUNS] [--baseline]
// Prints every run and the median, in milliseconds. --baseline measures the
// same with the `generator` importer waiting for its next round (round-interval
// 1h) instead: the daemon's own shutdown cost, without HTTP. Baseline runs
// start the clock once metadata.json exists (the importer is initialised),
// found by polling: fine for a benchmark, never for a test.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fake_algod.hpp"

namespace fs = std::filesystem;
using conduit::test::AlgodRound;
using conduit::test::FakeAlgod;

namespace {

// Round 0 as algod serves it: a header and nothing else.
AlgodRound genesis_block() {
  msgpack::sbuffer out;
  msgpack::packer packer(out);
  packer.pack_map(1);
  packer.pack("block");
  packer.pack_map(2);
  packer.pack("gen");
  packer.pack("bench-v1");
  packer.pack("proto");
  packer.pack("future");
  return {std::string(out.data(), out.size()), std::nullopt};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONDUIT_BINARY [RUNS]\n", argv[0]);
    return 2;
  }
  std::string conduit = argv[1];
  int runs = argc > 2 ? std::atoi(argv[2]) : 21;
  bool baseline = argc > 3 && std::string(argv[3]) == "--baseline";

  FakeAlgod server("bench-token");
  server.add_round(0, genesis_block());
  server.set_last_round(0);

  std::vector<double> millis;
  for (int i = 0; i < runs; ++i) {
    char pattern[] = "/tmp/conduit-bench-XXXXXX";
    if (!mkdtemp(pattern)) return 1;
    fs::path dir = pattern;
    if (baseline)
      std::ofstream(dir / "conduit.toml")
          << "log-level = \"error\"\nhide-banner = true\n[importer]\nname = \"generator\"\n"
          << "[importer.config]\nround-interval = \"1h\"\n[exporter]\nname = \"noop\"\n";
    else
      std::ofstream(dir / "conduit.toml")
          << "log-level = \"error\"\nhide-banner = true\n[importer]\nname = \"algod\"\n"
          << "[importer.config]\nmode = \"archival\"\nnetaddr = \"" << server.address()
          << "\"\ntoken = \"bench-token\"\n[exporter]\nname = \"noop\"\n";

    size_t seen = server.requests().size();
    pid_t pid = fork();
    if (pid == 0) {
      execl(conduit.c_str(), conduit.c_str(), "-d", dir.c_str(), "--bus", "none", nullptr);
      _exit(127);
    }
    if (baseline) {
      while (!fs::exists(dir / "metadata.json")) usleep(1000);
      usleep(50000);  // let the other plugins initialise
    } else if (server.wait_for_request("/v2/status/wait-for-block-after/0", {}, seen) < 0) {
      return 1;  // round 0 is exported and the importer waits for round 1 from here on
    }
    auto sent = std::chrono::steady_clock::now();
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    auto exited = std::chrono::steady_clock::now();
    double ms = std::chrono::duration<double, std::milli>(exited - sent).count();
    server.release_waiting();
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::fflush(stdout);
    std::printf("run %2d: %8.3f ms%s\n", i + 1, ms, clean ? "" : "  (exit status not 0!)");
    millis.push_back(ms);
    fs::remove_all(dir);
  }
  std::sort(millis.begin(), millis.end());
  std::printf(
      "%s: median %.3f ms, min %.3f ms, "
      "max %.3f ms over %d runs\n",
      baseline ? "baseline (generator importer waiting)"
               : "SIGTERM -> exit while blocked in a long-poll",
      millis[millis.size() / 2], millis.front(), millis.back(), runs);
  std::printf(
      "{\"bench\": \"stop-latency\", \"name\": \"%s\", \"runs\": %d, \"median_ms\": %.2f, "
      "\"p99_ms\": %.2f, \"max_ms\": %.2f}\n",
      baseline ? "algod-baseline-generator-waiting-sigterm" : "algod-long-poll-sigterm", runs,
      millis[millis.size() / 2], millis[std::min(millis.size() - 1, millis.size() * 99 / 100)],
      millis.back());
  return 0;
}
