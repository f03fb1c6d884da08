// The daemon as users run it: `conduit -d DIR` (a real child process, default
// settings, durable), file_reader -> [filter_processor] -> file_writer
// (.msgp.gz on disk, every fsync) over the fixture chain cycled to N rounds,
// from round 0, timed from the fork to the checkpoint (DIR/metadata.json)
// naming round N+1,
// beside the single-thread zlib and libdeflate floors of the same files
// (read + gunzip + gzip level 6) measured in the same run, interleaved.
// CPU use is the child's user+sys (wait4) over its whole life, divided by that
// life: 2.0 means both cores busy. Each thread's share comes from
// /proc/PID/task/*/stat, read just before the SIGTERM that ends the run.
// Pipelines:
//   pass-through      no processor: the read bytes are written unchanged;
//   filter-drop-pay   filter_processor drops the pay transactions (most);
//   filter-drop-acfg  filter_processor drops the acfg transactions (few).
// With --postgresql CONNINFO [BYTES...]: file_reader -> postgresql instead, into
// a database made afresh for each run, once with the default settings and once
// per group-commit-bytes value given: rounds/s, peak RSS (wait4) and cores.
// Usage: bench_daemon CONDUIT WORKDIR [ROUNDS (2000)] [FIXTURES] [REPEATS (3)]
//                     [--postgresql CONNINFO [GROUP_COMMIT_BYTES...]]
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "fixture_chain.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct DaemonRun {
  double seconds = 0;      // fork to the last round's checkpoint
  double cpu_seconds = 0;  // user + sys over the child's life
  double life_seconds = 0;
  long max_rss_kib = 0;
  std::map<std::string, double> thread_cpu;  // by thread name (comm)
};

uint64_t checkpoint_next_round(const fs::path& metadata) {
  std::string text = bench::slurp(metadata);
  auto at = text.find("\"next-round\"");
  if (at == std::string::npos) return 0;
  at = text.find(':', at);
  return at == std::string::npos ? 0 : std::strtoull(text.c_str() + at + 1, nullptr, 10);
}

// Per-thread user+sys seconds, summed by thread name.
std::map<std::string, double> thread_cpu(pid_t pid) {
  std::map<std::string, double> out;
  double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::string stat = bench::slurp(task.path() / "stat");
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string name = stat.substr(open + 1, close - open - 1);
    // Fields after "(comm)": state is field 3; utime, stime are fields 14, 15.
    const char* p = stat.c_str() + close + 2;
    unsigned long long utime = 0, stime = 0;
    std::sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
    out[name] += (utime + stime) / tick;
  }
  return out;
}

// Waits (inotify on DIR, woken every 100 ms to notice a dead child) until the
// checkpoint names `next`. False when the child exits first.
bool wait_for_checkpoint(pid_t pid, const fs::path& dir, uint64_t next) {
  int watch = ::inotify_init1(IN_CLOEXEC);
  ::inotify_add_watch(watch, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  char buffer[4096];
  for (;;) {
    if (fs::exists(dir / "metadata.json") && checkpoint_next_round(dir / "metadata.json") >= next)
      break;
    pollfd fd{watch, POLLIN, 0};
    if (::poll(&fd, 1, 100) > 0) [[maybe_unused]]
      auto n = ::read(watch, buffer, sizeof buffer);
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ::close(watch);
      return false;
    }
  }
  ::close(watch);
  return true;
}

DaemonRun run_daemon(const fs::path& conduit, const fs::path& dir, const std::string& toml,
                     uint64_t rounds) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  bench::spill(dir / "conduit.toml", toml);
  DaemonRun run;
  auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string log = (dir / "log").string();
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    ::execl(conduit.c_str(), conduit.c_str(), "-d", dir.c_str(), "--bus", "none", nullptr);
    ::_exit(127);
  }
  if (!wait_for_checkpoint(pid, dir, rounds + 1)) {
    std::fprintf(stderr, "bench_daemon: conduit exited early; see %s\n", (dir / "log").c_str());
    std::exit(1);
  }
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.thread_cpu = thread_cpu(pid);
  ::kill(pid, SIGTERM);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  run.life_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  run.cpu_seconds = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                    usage.ru_stime.tv_usec / 1e6;
  run.max_rss_kib = usage.ru_maxrss;
  return run;
}

std::string config(const fs::path& in, const fs::path& out, const char* processor) {
  return "[importer]\nname = \"file_reader\"\n[importer.config]\nblock-dir = \"" + in.string() +
         "\"\n" + processor +
         "[exporter]\nname = \"file_writer\"\n[exporter.config]\nblock-dir = \"" + out.string() +
         "\"\n";
}

std::string drop(const char* type) {
  return std::string(
             "[[processors]]\nname = \"filter_processor\"\n[[processors.config.filters]]\n"
             "none = [ { tag = \"txn.type\", expression-type = \"equal\", expression = \"") +
         type + "\" } ]\n";
}

// A fresh, empty database `name` on the server of `conninfo`.
void recreate_database(const std::string& conninfo, const std::string& name) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  for (std::string sql : {"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name}) {
    PGresult* r = PQexec(conn, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "bench_daemon: %s: %s", sql.c_str(), PQerrorMessage(conn));
      std::exit(1);
    }
    PQclear(r);
  }
  PQfinish(conn);
}

std::string postgresql_config(const fs::path& in, const std::string& conninfo,
                              const std::string& group_commit_bytes) {
  std::string text;
  if (!group_commit_bytes.empty()) text += "group-commit-bytes = " + group_commit_bytes + "\n";
  return text + "[importer]\nname = \"file_reader\"\n[importer.config]\nblock-dir = \"" +
         in.string() + "\"\n[exporter]\nname = \"postgresql\"\n[exporter.config]\n" +
         "connection-string = \"" + conninfo + " dbname=bench_daemon\"\n";
}

void emit(const std::string& name, double value, const char* unit) {
  std::printf("{\"bench\": \"daemon\", \"name\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"}\n",
              name.c_str(), value, unit);
  std::fflush(stdout);
}

void report(const std::string& name, const DaemonRun& run, uint64_t rounds, double zlib_floor,
            double deflate_floor) {
  double rate = rounds / run.seconds;
  emit("daemon-" + name, rate, "rounds/s");
  if (zlib_floor > 0) {
    emit("ratio-daemon-" + name + "-vs-zlib-floor", rate / zlib_floor, "x floor");
    emit("ratio-daemon-" + name + "-vs-libdeflate-floor", rate / deflate_floor, "x floor");
  }
  emit("daemon-" + name + "-cores", run.cpu_seconds / run.life_seconds, "cores");
  emit("daemon-" + name + "-peak-rss", static_cast<double>(run.max_rss_kib), "KiB");
  std::string threads;
  for (const auto& [thread, seconds] : run.thread_cpu) {
    char figure[64];
    std::snprintf(figure, sizeof figure, " %s=%.2fs", thread.c_str(), seconds);
    threads += figure;
  }
  std::printf("# %s: %.2f s to round %llu, cpu %.2f s over %.2f s; threads:%s\n", name.c_str(),
              run.seconds, static_cast<unsigned long long>(rounds), run.cpu_seconds,
              run.life_seconds, threads.c_str());
  std::fflush(stdout);
}

void file_pipelines(const fs::path& conduit, const fs::path& work, uint64_t rounds, int repeats) {
  const std::string pay = drop("pay"), acfg = drop("acfg");
  const std::pair<const char*, std::string> pipelines[] = {
      {"pass-through", ""}, {"filter-drop-pay", pay}, {"filter-drop-acfg", acfg}};
  bench::Libdeflate libdeflate;
  bench::Floors floors;
  std::map<std::string, DaemonRun> best;
  for (int i = 0; i < repeats; ++i) {  // interleaved; the best of each
    floors.measure(work / "in", rounds, libdeflate);
    for (const auto& [name, processor] : pipelines) {
      // Each run writes into a directory of its own, removed only at the end:
      // deleting thousands of files between runs made the next run's file
      // creation scan past recently deleted inodes (ext4), which a daemon
      // that only adds files never does.
      fs::path out = work / ("out-" + std::to_string(i) + "-" + name);
      DaemonRun run =
          run_daemon(conduit, work / "data", config(work / "in", out, processor.c_str()), rounds);
      auto& kept = best[name];
      if (kept.seconds == 0 || run.seconds < kept.seconds) kept = run;
    }
  }
  emit("floor-zlib-gunzip+gzip", floors.zlib, "rounds/s");
  emit("floor-libdeflate-gunzip+gzip", floors.libdeflate, "rounds/s");
  for (const auto& [name, run] : best) report(name, run, rounds, floors.zlib, floors.libdeflate);
}

// Each setting once per repeat, interleaved; the best rounds/s of each, with
// the largest peak RSS seen for it.
void postgresql_runs(const fs::path& conduit, const fs::path& work, uint64_t rounds, int repeats,
                     const std::string& conninfo, std::vector<std::string> budgets) {
  budgets.insert(budgets.begin(), "");  // the default
  std::map<std::string, DaemonRun> best;
  for (int i = 0; i < repeats; ++i)
    for (const auto& budget : budgets) {
      recreate_database(conninfo, "bench_daemon");
      DaemonRun run = run_daemon(conduit, work / "data",
                                 postgresql_config(work / "in", conninfo, budget), rounds);
      auto& kept = best[budget];
      long rss = std::max(kept.max_rss_kib, run.max_rss_kib);
      if (kept.seconds == 0 || run.seconds < kept.seconds) kept = run;
      kept.max_rss_kib = rss;
    }
  for (const auto& budget : budgets)
    report("postgresql-" + (budget.empty() ? std::string("default") : "gcb-" + budget),
           best[budget], rounds, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: bench_daemon CONDUIT WORKDIR [ROUNDS] [FIXTURES] [REPEATS] "
                 "[--postgresql CONNINFO [GROUP_COMMIT_BYTES...]]\n");
    return 2;
  }
  fs::path conduit = fs::absolute(argv[1]);
  fs::path work = fs::absolute(fs::path(argv[2]) / "daemon");
  uint64_t rounds = argc > 3 ? std::stoull(argv[3]) : 2000;
  fs::path fixtures = argc > 4 ? argv[4] : "../shared/fixtures/conduit-blocks";
  int repeats = argc > 5 ? std::stoi(argv[5]) : 3;
  if (!fs::exists(fixtures / "1_block.msgp.gz")) {
    std::fprintf(stderr, "bench_daemon: no fixtures at %s; skipped\n", fixtures.c_str());
    return 0;
  }
  fs::remove_all(work);
  bench::prepare_chain(fixtures, work / "in", rounds);
  if (argc > 7 && std::string(argv[6]) == "--postgresql")
    postgresql_runs(conduit, work, rounds, repeats, argv[7],
                    std::vector<std::string>(argv + 8, argv + argc));
  else
    file_pipelines(conduit, work, rounds, repeats);
  // The files written stay for the caller to remove after every measurement
  // (bench/daemon.sh and bench/run.sh do at exit): deleting thousands of files
  // here would slow the file creation of the next build's runs (see above).
  return 0;
}
