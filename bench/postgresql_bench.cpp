// Throughput of the postgresql exporter, and its `now`-stop latency from each
// blocking point.
// Usage: postgresql_bench CONNINFO [FIXTURES_DIR]   (bench/postgresql.sh starts a
// throw-away server and runs this, and the starting main's build of it as the
// baseline). Each throughput phase starts from an empty database.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <msgpack.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "core/block.hpp"
#include "core/block_msgpack.hpp"
#include "core/config.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "plugins/postgresql/postgresql.hpp"

using namespace conduit;
using Clock = std::chrono::steady_clock;

namespace {

std::string g_conninfo;

void run_sql(const std::string& sql) {
  PGconn* c = PQconnectdb(g_conninfo.c_str());
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  PQclear(PQexec(c, sql.c_str()));
  PQfinish(c);
}

void reset_tables() {
  run_sql(
      "DROP TABLE IF EXISTS txn, block_header, metastate, txn_participation, account, "
      "account_asset, asset, app, account_app, app_box");
}

std::unique_ptr<Exporter> exporter_for(const std::string& conninfo) {
  std::string text =
      "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n"
      "[exporter.config]\nconnection-string = \"" +
      conninfo + "\"\n";
  Config config = parse_config(text, "/tmp", "conduit.toml");
  return std::move(build_plugins(builtin_registry(), config).exporter);
}
std::unique_ptr<Exporter> make_exporter() {
  return exporter_for(g_conninfo);
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

// The fixtures' rounds 1..N replayed as a long chain: round numbers rewritten,
// deltas and transactions unchanged (upserts of the same state, new txn rows).
std::vector<BlockData> long_chain(const std::vector<BlockData>& fixtures, uint64_t rounds) {
  std::vector<BlockData> out;
  out.push_back(fixtures.front().clone());
  for (uint64_t r = 1; r < rounds; ++r) {
    BlockData b = fixtures[1 + (r - 1) % (fixtures.size() - 1)].clone();
    if (auto* header = mp::find(b.tree().root, "block"))
      if (auto* rnd = mp::find(*header, "rnd")) rnd->via.u64 = r;
    b.refresh();
    out.push_back(std::move(b));
  }
  return out;
}

// Group commit when the exporter has it (this bench also builds against the
// starting main, whose exporter commits one round per receive()).
template <class E>
void export_unit(E& exporter, const BlockData* const* blocks, size_t count) {
  if constexpr (requires { exporter.commit_unit(std::stop_token{}); }) {
    if (count > 1 && exporter.supports_units()) {
      for (size_t i = 0; i < count; ++i) exporter.stage(*blocks[i], {});
      exporter.commit_unit({});
      return;
    }
  }
  for (size_t i = 0; i < count; ++i) exporter.receive(*blocks[i], {});
}

// Exporter::prepare as the pipeline runs it: on the thread before the
// exporter's, at most a queue (64 rounds) ahead; a round the exporter reaches
// first it builds itself.
class Preparer {
 public:
  template <class E>
  Preparer(const E& exporter, std::vector<BlockData>& blocks)
      : states_(blocks.size()), thread_([this, &exporter, &blocks] {
          if constexpr (requires { exporter.prepare(blocks[0]); }) {
            for (size_t i = 0; i < blocks.size(); ++i) {
              for (size_t s = staged_.load(); i >= s + 64; s = staged_.load()) staged_.wait(s);
              int free = 0;
              if (!states_[i].compare_exchange_strong(free, 1)) continue;
              try {
                exporter.prepare(blocks[i]);
              } catch (...) {
              }
              states_[i].store(2);
              states_[i].notify_all();
            }
          }
        }) {}
  ~Preparer() {
    staged_.store(SIZE_MAX / 2);
    staged_.notify_all();
    thread_.join();
  }
  // Before the exporter stages round i.
  void claim(size_t i) {
    int free = 0;
    if (!states_[i].compare_exchange_strong(free, 3))
      for (int s = states_[i].load(); s == 1; s = states_[i].load()) states_[i].wait(s);
  }
  void staged(size_t i) {
    staged_.store(i + 1);
    staged_.notify_all();
  }

 private:
  std::vector<std::atomic<int>> states_;  // 0 free, 1 preparing, 2 prepared, 3 the exporter's
  std::atomic<size_t> staged_{0};
  std::thread thread_;
};

// Group commit when the exporter has it (this bench also builds against the
// starting main, whose exporter commits one round per receive()).
template <class E>
void export_unit(E& exporter, std::vector<BlockData>& blocks, size_t at, size_t count,
                 Preparer* preparer) {
  auto claim = [&](size_t i) {
    if (preparer) preparer->claim(i);
  };
  auto staged = [&](size_t i) {
    if (preparer) preparer->staged(i);
  };
  if constexpr (requires { exporter.commit_unit(std::stop_token{}); }) {
    if (count > 1 && exporter.supports_units()) {
      for (size_t i = at; i < at + count; ++i) {
        claim(i);
        exporter.stage(blocks[i], {});
        staged(i);
      }
      exporter.commit_unit({});
      return;
    }
  }
  for (size_t i = at; i < at + count; ++i) {
    claim(i);
    exporter.receive(blocks[i], {});
    staged(i);
  }
}

// Exports `blocks` into fresh tables, `unit_rounds` rounds per commit (the
// pipeline's default group-commit-rounds is 64), with or without prepare() on
// a thread of its own; prints rates. Returns the best run's seconds.
double throughput(const std::string& label, const std::vector<BlockData>& blocks, int repeats,
                  size_t unit_rounds = 1, bool overlap = false) {
  double best_rounds = 0, best_txns = 0, best_secs = 0;
  for (int rep = 0; rep < repeats; ++rep) {
    std::vector<BlockData> copies;
    for (const auto& b : blocks) copies.push_back(b.clone());
    reset_tables();
    auto exporter = make_exporter();
    Logger quiet(nullptr, LogLevel::error);
    exporter->init(InitContext{.next_round = blocks.front().round(), .logger = &quiet}, {});
    size_t txns = 0;
    for (const auto& b : blocks) txns += b.txn_count();
    auto start = Clock::now();
    {
      std::optional<Preparer> preparer;
      if (overlap) preparer.emplace(*exporter, copies);
      for (size_t at = 0; at < copies.size(); at += unit_rounds)
        export_unit(*exporter, copies, at, std::min(unit_rounds, copies.size() - at),
                    preparer ? &*preparer : nullptr);
    }
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    exporter->close();
    if (blocks.size() / secs > best_rounds) best_secs = secs;
    best_rounds = std::max(best_rounds, blocks.size() / secs);
    best_txns = std::max(best_txns, txns / secs);
  }
  std::string name =
      label +
      (unit_rounds > 1 ? ", units of " + std::to_string(unit_rounds) : ", one round per commit") +
      (overlap ? ", prepare()" : "");
  std::printf("%-64s %9.1f rounds/s %10.0f txn/s (best of %d)\n", name.c_str(), best_rounds,
              best_txns, repeats);
  std::fflush(stdout);
  return best_secs;
}

// The rows the last export left in the tables (all but metastate), as COPY text.
std::vector<std::pair<std::string, std::string>> dump_tables() {
  std::vector<std::pair<std::string, std::string>> out;
  PGconn* c = PQconnectdb(g_conninfo.c_str());
  for (const char* table : {"block_header", "txn", "txn_participation", "account", "account_asset",
                            "asset", "app", "account_app", "app_box"}) {
    PGresult* r = PQexec(c, (std::string("COPY ") + table + " TO STDOUT").c_str());
    PQclear(r);
    std::string data;
    char* line;
    int n;
    while ((n = PQgetCopyData(c, &line, 0)) > 0) {
      data.append(line, n);
      PQfreemem(line);
    }
    PQclear(PQgetResult(c));
    out.emplace_back(table, std::move(data));
  }
  PQfinish(c);
  return out;
}

// The floor for a round's rows: a raw COPY of exactly the rows the exporter
// wrote, into the same (emptied) tables and indexes, in one transaction. Best
// of `repeats`, in seconds.
double raw_copy_seconds(const std::vector<std::pair<std::string, std::string>>& tables,
                        int repeats) {
  double best = 0;
  PGconn* c = PQconnectdb(g_conninfo.c_str());
  for (int rep = 0; rep < repeats; ++rep) {
    std::string truncate = "TRUNCATE";
    for (size_t i = 0; i < tables.size(); ++i) truncate += (i ? ", " : " ") + tables[i].first;
    PQclear(PQexec(c, truncate.c_str()));
    auto start = Clock::now();
    PQclear(PQexec(c, "BEGIN"));
    for (const auto& [table, data] : tables) {
      PQclear(PQexec(c, ("COPY " + table + " FROM STDIN").c_str()));
      PQputCopyData(c, data.data(), static_cast<int>(data.size()));
      PQputCopyEnd(c, nullptr);
      PGresult* r = PQgetResult(c);
      if (PQresultStatus(r) != PGRES_COMMAND_OK)
        std::fprintf(stderr, "raw COPY %s: %s", table.c_str(), PQresultErrorMessage(r));
      PQclear(r);
      while ((r = PQgetResult(c))) PQclear(r);
    }
    PQclear(PQexec(c, "COMMIT"));
    double secs = std::chrono::duration<double>(Clock::now() - start).count();
    if (best == 0 || secs < best) best = secs;
  }
  PQfinish(c);
  return best;
}

int listen_tcp(int backlog, uint16_t& port) {
  // Non-blocking: the bench drains what was accepted without waiting.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(fd, backlog);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

struct Latencies {
  std::vector<double> ms;
  int timeouts = 0;
  void print(const char* label) {
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {
      return ms.empty() ? -1.0 : ms[static_cast<size_t>(q * (ms.size() - 1))];
    };
    std::printf(
        "  %-52s median %7.2f ms  p99 %7.2f ms  max %7.2f ms  (n=%zu%s)\n", label, at(0.5),
        at(0.99), ms.empty() ? -1.0 : ms.back(), ms.size(),
        timeouts ? (", " + std::to_string(timeouts) + " not stopped within 3 s").c_str() : "");
    std::fflush(stdout);
  }
};

// Starts `call` on a thread, waits `settle` for it to reach its blocking point,
// requests a stop and records how long the call took to return after it. A
// call that does not return within 3 s is abandoned (counted, its thread detached).
template <class Call>
void measure(Latencies& out, Call call, std::chrono::milliseconds settle) {
  auto stop = std::make_shared<std::stop_source>();
  auto done = std::make_shared<std::promise<Clock::time_point>>();
  auto finished = done->get_future();
  std::thread worker([stop, done, call] {
    try {
      call(stop->get_token());
    } catch (...) {
    }
    done->set_value(Clock::now());
  });
  std::this_thread::sleep_for(settle);
  auto requested = Clock::now();
  stop->request_stop();
  if (finished.wait_for(std::chrono::seconds(3)) != std::future_status::ready) {
    ++out.timeouts;
    worker.detach();
    return;
  }
  worker.join();
  out.ms.push_back(std::chrono::duration<double, std::milli>(finished.get() - requested).count());
}

void stop_latencies(int runs) {
  std::printf("now-stop latency from each blocking point (%d stops each):\n", runs);
  Logger quiet(nullptr, LogLevel::error);
  {
    // A server that accepts TCP and never answers: the connect's startup wait.
    uint16_t port;
    int fd = listen_tcp(1024, port);
    Latencies l;
    for (int i = 0; i < runs; ++i) {
      auto exporter = exporter_for("host=127.0.0.1 port=" + std::to_string(port) + " dbname=x");
      measure(
          l,
          [&exporter, &quiet](std::stop_token stop) {
            exporter->init(InitContext{.next_round = 0, .logger = &quiet}, stop);
          },
          std::chrono::milliseconds(5));
      if (l.timeouts) exporter.release();  // still in use by a detached thread
      while (true) {                       // drop what was accepted meanwhile
        int c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK);
        if (c < 0) break;
        ::close(c);
      }
      if (l.timeouts) break;
    }
    l.print("connect, server accepts and never answers");
    ::close(fd);
  }
  {
    // A listener that never accepts (accept queue full): the TCP connect itself.
    uint16_t port;
    int fd = listen_tcp(0, port);
    std::vector<int> fillers;
    for (int i = 0; i < 4; ++i) {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port);
      ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers.push_back(c);
    }
    Latencies l;
    for (int i = 0; i < runs && !l.timeouts; ++i) {
      auto exporter = exporter_for("host=127.0.0.1 port=" + std::to_string(port) + " dbname=x");
      measure(
          l,
          [&exporter, &quiet](std::stop_token stop) {
            exporter->init(InitContext{.next_round = 0, .logger = &quiet}, stop);
          },
          std::chrono::milliseconds(5));
      if (l.timeouts) exporter.release();
    }
    l.print("connect, listener never accepts");
    for (int c : fillers) ::close(c);
    ::close(fd);
  }
  {
    // A statement the server never answers: the exporter's backend is stopped
    // (SIGSTOP) mid-round, so neither the statement nor a ROLLBACK completes.
    Latencies l;
    auto blocks = generated(0, 2, 200);
    for (int i = 0; i < runs && !l.timeouts; ++i) {
      reset_tables();
      auto exporter = make_exporter();
      exporter->init(InitContext{.next_round = 0, .logger = &quiet}, {});
      exporter->receive(blocks[0], {});
      // The backend of the exporter's connection: the one that is not ours.
      PGconn* admin = PQconnectdb(g_conninfo.c_str());
      PGresult* r = PQexec(admin,
                           "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
      pid_t backend = PQntuples(r) ? std::stoi(PQgetvalue(r, 0, 0)) : 0;
      PQclear(r);
      if (backend) ::kill(backend, SIGSTOP);
      measure(
          l, [&exporter, &blocks](std::stop_token stop) { exporter->receive(blocks[1], stop); },
          std::chrono::milliseconds(5));
      if (backend) ::kill(backend, SIGCONT);
      if (l.timeouts) {
        exporter.release();
      } else {
        exporter->close();
      }
      PQfinish(admin);
    }
    l.print("statement in flight, server stopped (cancel, rollback)");
  }
}

}  // namespace

// The exporter's own CPU: the rows of every round (what prepare() builds),
// without the server.
void client_rows(const std::string& label, const std::vector<BlockData>& blocks) {
  size_t txns = 0;
  for (const auto& b : blocks) txns += b.txn_count();
  auto start = Clock::now();
  for (const auto& b : blocks) plugins::pg::round_rows(b.tree().root, b.round());
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%-64s %9.1f rounds/s %10.0f txn/s\n", (label + ": rows built, no server").c_str(),
              blocks.size() / secs, txns / secs);
}

// One machine-readable figure (bench/run.sh gathers them for its tables and plots).
void emit(const char* name, double value, const char* unit) {
  std::printf("{\"bench\": \"postgresql\", \"name\": \"%s\", \"value\": %.4g, \"unit\": \"%s\"}\n",
              name, value, unit);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONNINFO [FIXTURES_DIR] [--latency-only|--throughput-only]\n",
                 argv[0]);
    return 2;
  }
  g_conninfo = argv[1];
  std::string mode = argc > 3 ? argv[3] : "";
  if (mode != "--latency-only") {
    if (argc > 2 && std::string(argv[2]) != "-") {
      std::vector<BlockData> fixtures;
      for (int r = 0;; ++r) {
        auto path = std::filesystem::path(argv[2]) / (std::to_string(r) + "_block.msgp.gz");
        if (!std::filesystem::exists(path)) break;
        fixtures.push_back(BlockData::decode_msgpack(gunzip(path)));
      }
      size_t txns = 0;
      for (auto& b : fixtures) txns += b.txn_count();
      throughput("fixtures (" + std::to_string(fixtures.size()) + " rounds, " +
                     std::to_string(txns) + " txns)",
                 fixtures, 5);
      if (fixtures.size() > 2) {
        auto chain = long_chain(fixtures, 300);
        if (mode == "--chain-only") {  // for profiling
          throughput("fixtures replayed as 300 rounds", chain, 3, 64, true);
          client_rows("fixtures replayed as 300 rounds", chain);
          return 0;
        }
        throughput("fixtures replayed as 300 rounds", chain, 3);
        throughput("fixtures replayed as 300 rounds", chain, 3, 64);
        double chain_secs = throughput("fixtures replayed as 300 rounds", chain, 3, 64, true);
        client_rows("fixtures replayed as 300 rounds", chain);
        // The ceiling for this chain: its rows COPYed raw into empty tables.
        double copy_secs = raw_copy_seconds(dump_tables(), 3);
        std::printf("%-64s %9.1f rounds/s %10.0f txn/s (best of 3)\n",
                    "raw COPY of the chain's rows, one transaction", chain.size() / copy_secs, [&] {
                      size_t n = 0;
                      for (const auto& b : chain) n += b.txn_count();
                      return n;
                    }() / copy_secs);
        std::printf("exporter (units, prepare()) / raw COPY (fixture chain): %.2fx\n",
                    copy_secs / chain_secs);
        emit("pg-fixture-chain", chain.size() / chain_secs, "rounds/s");
        emit("pg-fixture-chain-raw-copy", chain.size() / copy_secs, "rounds/s");
        emit("ratio-pg-chain-vs-raw-copy", copy_secs / chain_secs, "x baseline");
      }
    }
    throughput("generated, 200 rounds x 100 txns", generated(0, 200, 100), 3);
    throughput("generated, 200 rounds x 100 txns", generated(0, 200, 100), 3, 64);
    throughput("generated, 200 rounds x 100 txns", generated(0, 200, 100), 3, 64, true);
    throughput("generated, 50 rounds x 1000 txns", generated(0, 50, 1000), 3, 64);
    throughput("generated, 50 rounds x 1000 txns", generated(0, 50, 1000), 3, 64, true);
    {
      // Generated 10,000-transaction rounds against a raw COPY of the rows
      // they became, in the same tables.
      auto blocks = generated(0, 10, 10000);
      size_t txns = 0;
      for (const auto& b : blocks) txns += b.txn_count();
      double exporter_secs = throughput("generated, 10 rounds x 10000 txns", blocks, 3, 64);
      double overlap_secs = throughput("generated, 10 rounds x 10000 txns", blocks, 3, 64, true);
      double copy_secs = raw_copy_seconds(dump_tables(), 3);
      client_rows("generated, 10 rounds x 10000 txns", blocks);
      std::printf("%-64s %9.1f rounds/s %10.0f txn/s (best of 3)\n",
                  "raw COPY of the same rows, one transaction", blocks.size() / copy_secs,
                  txns / copy_secs);
      std::printf("exporter / raw COPY (10,000-txn rounds): %.2fx, with prepare(): %.2fx\n",
                  copy_secs / exporter_secs, copy_secs / overlap_secs);
      // With prepare(): the pipeline builds queued rounds' rows while the exporter commits.
      emit("pg-10k-txn-rounds", txns / overlap_secs, "txn/s");
      emit("pg-10k-txn-rounds-raw-copy", txns / copy_secs, "txn/s");
      emit("ratio-pg-10k-vs-raw-copy", copy_secs / overlap_secs, "x baseline");
      std::fflush(stdout);
    }
  }
  if (mode != "--throughput-only") stop_latencies(100);
  return 0;
}
