// Throughput of the postgresql exporter and its `now`-stop latency.
// Usage: postgresql_bench CONNINFO [FIXTURES_DIR]   (bench/postgresql.sh starts a
// throw-away server and runs this). Each phase starts from empty tables.
#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

#include "core/block.hpp"
#include "core/config.hpp"
#include "core/registry.hpp"

using namespace conduit;
using Clock = std::chrono::steady_clock;

namespace {

std::string g_conninfo;

void reset_tables() {
  PGconn* c = PQconnectdb(g_conninfo.c_str());
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  PQclear(PQexec(c, "DROP TABLE IF EXISTS txn, block_header, metastate"));
  PQfinish(c);
}

std::unique_ptr<Exporter> make_exporter() {
  std::string text =
      "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n"
      "[exporter.config]\nconnection-string = \"" +
      g_conninfo + "\"\n";
  Config config = parse_config(text, "/tmp", "conduit.toml");
  return std::move(build_plugins(builtin_registry(), config).exporter);
}

std::vector<BlockData> generated(uint64_t first, uint64_t count, uint64_t txns) {
  std::string text = "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = " +
                     std::to_string(txns) + "\n[exporter]\nname = \"noop\"\n";
  Config config = parse_config(text, "/tmp", "conduit.toml");
  auto importer = std::move(build_plugins(builtin_registry(), config).importer);
  importer->init(InitContext{.next_round = first}, {});
  std::vector<BlockData> out;
  for (uint64_t r = first; r < first + count; ++r) out.push_back(importer->get_block(r, {}));
  importer->close();
  return out;
}

std::string gunzip(const std::filesystem::path& path) {
  std::string cmd = "gzip -dc '" + path.string() + "'";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

// Exports `blocks` (after the rounds before them) into fresh tables; prints rates.
void throughput(const std::string& label, const std::vector<BlockData>& blocks, int repeats) {
  double best_rounds = 0, best_txns = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    reset_tables();
    auto exporter = make_exporter();
    Logger quiet(nullptr, LogLevel::error);
    exporter->init(InitContext{.next_round = blocks.front().round(), .logger = &quiet}, {});
    size_t txns = 0;
    auto start = Clock::now();
    for (const auto& b : blocks) {
      exporter->receive(b, {});
      txns += b.txn_count();
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    exporter->close();
    best_rounds = std::max(best_rounds, blocks.size() / secs);
    best_txns = std::max(best_txns, txns / secs);
  }
  std::printf("%-40s %9.1f rounds/s %10.0f txn/s (best of %d)\n", label.c_str(), best_rounds,
              best_txns, repeats);
}

// Time from request_stop to receive() throwing Cancelled, stop requested `delay`
// into a round of `txns` transactions.
void stop_latency(uint64_t txns) {
  auto blocks = generated(1, 1, txns);
  const BlockData& big = blocks.front();
  // The full round's duration, for choosing stop points.
  reset_tables();
  double full;
  {
    auto exporter = make_exporter();
    Logger quiet(nullptr, LogLevel::error);
    exporter->init(InitContext{.next_round = 1, .logger = &quiet}, {});
    auto start = Clock::now();
    exporter->receive(big, {});
    full = std::chrono::duration<double>(Clock::now() - start).count();
    exporter->close();
  }
  std::printf("round of %llu txns: %.3f s uninterrupted\n", static_cast<unsigned long long>(txns),
              full);
  for (double fraction : {0.1, 0.3, 0.5, 0.7, 0.9}) {
    reset_tables();
    auto exporter = make_exporter();
    Logger quiet(nullptr, LogLevel::error);
    exporter->init(InitContext{.next_round = 1, .logger = &quiet}, {});
    std::stop_source stop;
    std::promise<Clock::time_point> done;
    std::thread worker([&] {
      try {
        exporter->receive(big, stop.get_token());
      } catch (const Cancelled&) {
      }
      done.set_value(Clock::now());
    });
    std::this_thread::sleep_for(std::chrono::duration<double>(full * fraction));
    auto requested = Clock::now();
    stop.request_stop();
    auto finished = done.get_future().get();
    worker.join();
    exporter->close();
    double ms = std::chrono::duration<double, std::milli>(finished - requested).count();
    std::printf("  now at %2.0f%% of the round: stopped in %7.2f ms%s\n", fraction * 100, ms,
                finished < requested ? " (had finished)" : "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONNINFO [FIXTURES_DIR]\n", argv[0]);
    return 2;
  }
  g_conninfo = argv[1];
  if (argc > 2) {
    std::vector<BlockData> fixtures;
    for (int r = 0;; ++r) {
      auto path = std::filesystem::path(argv[2]) / (std::to_string(r) + "_block.msgp.gz");
      if (!std::filesystem::exists(path)) break;
      fixtures.push_back(BlockData::decode_msgpack(gunzip(path)));
    }
    size_t txns = 0;
    for (auto& b : fixtures) txns += b.txn_count();
    throughput("fixtures (" + std::to_string(fixtures.size()) + " rounds, " + std::to_string(txns) +
                   " txns)",
               fixtures, 5);
  }
  throughput("generated, 200 rounds x 100 txns", generated(0, 200, 100), 3);
  throughput("generated, 50 rounds x 1000 txns", generated(0, 50, 1000), 3);
  throughput("generated, 5 rounds x 10000 txns", generated(0, 5, 10000), 3);
  stop_latency(10000);
  stop_latency(100000);
  return 0;
}
