// File pipeline throughput: file_reader (.msgp.gz) -> processor ->
// file_writer (.msgp.gz), durable (every fsync), over the fixture blocks
// repeated to a few hundred rounds, against codec floors measured in the same
// run on the same files, single-threaded, in this process:
//   zlib floor:       read + zlib gunzip + zlib gzip (level 6) of each file
//   libdeflate floor: read + libdeflate gunzip + gzip (level 6) of each file
// Two pipelines:
//   filter:       filter_processor drops the acfg transactions (few: most
//                 of the chain's blocks have none and pass unchanged);
//   filter-drop-pay: drops the pay transactions (most), so every block is
//                 changed, re-encoded and re-compressed;
//   pass-through: noop processor, blocks unchanged.
// The floors are implemented here (not with the plugins' gzip) so that the same
// source measures any version of conduit.
// Usage: bench_file_pipeline WORKDIR [ROUNDS] [FIXTURES]
#include <chrono>
#include <cstdio>
#include <string>

#include "core/block_msgpack.hpp"
#include "core/pipeline.hpp"
#include "core/registry.hpp"
#include "fixture_chain.hpp"
#include "plugins/builtin.hpp"

using namespace conduit;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct StopAfter : Observer {
  Pipeline* pipeline = nullptr;
  uint64_t last = 0;
  void on_exported(uint64_t round, std::size_t) override {
    if (round == last) pipeline->stop(StopMode::end_of_round, "bench");
  }
};

double pipeline_rounds_per_second(const fs::path& work, const fs::path& in, uint64_t rounds,
                                  const std::string& processor) {
  fs::path data = work / "data";
  fs::remove_all(data);
  fs::create_directories(data);
  std::string text = "[importer]\nname = \"file_reader\"\n[importer.config]\nblock-dir = \"" +
                     in.string() + "\"\n" + processor +
                     "[exporter]\nname = \"file_writer\"\n"
                     "[exporter.config]\nblock-dir = \"" +
                     (work / "out").string() + "\"\n";
  fs::remove_all(work / "out");
  Config config = parse_config(text, data, "bench.toml");
  Logger logger(nullptr, LogLevel::error);
  StopAfter observer;
  observer.last = rounds;
  Pipeline pipeline(build_plugins(builtin_registry(), config),
                    {.data_dir = data, .next_round_override = 1, .durable_checkpoint = true},
                    logger, &observer);
  observer.pipeline = &pipeline;
  auto start = Clock::now();
  StopCause cause = pipeline.run();
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (cause.reason != StopReason::stop_requested) {
    std::fprintf(stderr, "pipeline failed: %s\n", cause.detail.c_str());
    std::exit(1);
  }
  return rounds / s;
}

const char* kFilter = R"([[processors]]
name = "filter_processor"
[[processors.config.filters]]
none = [ { tag = "txn.type", expression-type = "equal", expression = "acfg" } ]
)";
// Drops the pay transactions: most of the fixture chain's (every block is re-encoded).
const char* kFilterDropPay = R"([[processors]]
name = "filter_processor"
[[processors.config.filters]]
none = [ { tag = "txn.type", expression-type = "equal", expression = "pay" } ]
)";
const char* kNoop = "[[processors]]\nname = \"noop\"\n";

}  // namespace

int main(int argc, char** argv) {
  fs::path work = argc > 1 ? fs::path(argv[1]) / "file-pipeline" : "/var/tmp/conduit-bench-files";
  uint64_t rounds = argc > 2 ? std::stoull(argv[2]) : 300;
  fs::path fixtures = argc > 3 ? argv[3] : "../shared/fixtures/conduit-blocks";
  if (const char* env = std::getenv("CONDUIT_FIXTURES"); env && argc <= 3) fixtures = env;
  if (!fs::exists(fixtures / "1_block.msgp.gz")) {
    std::fprintf(stderr, "bench_file_pipeline: no fixtures at %s; skipped\n", fixtures.c_str());
    return 0;
  }
  fs::remove_all(work);
  bench::prepare_chain(fixtures, work / "in", rounds);
  bench::Libdeflate libdeflate;
  bench::Floors floors;
  double filter_best = 0, pass_best = 0, pay_best = 0;
  for (int i = 0; i < 5; ++i) {  // interleaved repeats; best of each
    floors.measure(work / "in", rounds, libdeflate);
    filter_best =
        std::max(filter_best, pipeline_rounds_per_second(work, work / "in", rounds, kFilter));
    pass_best = std::max(pass_best, pipeline_rounds_per_second(work, work / "in", rounds, kNoop));
    pay_best =
        std::max(pay_best, pipeline_rounds_per_second(work, work / "in", rounds, kFilterDropPay));
  }
  std::string where = work.string().rfind("/dev/shm", 0) == 0 ? "tmpfs" : "disk";
  auto emit = [&](const std::string& name, double value, const char* unit) {
    std::printf(
        "{\"bench\": \"file-pipeline\", \"name\": \"%s\", \"value\": %.2f, \"unit\": \"%s\"}\n",
        name.c_str(), value, unit);
  };
  emit("floor-zlib-gunzip+gzip", floors.zlib, "rounds/s");
  emit("floor-libdeflate-gunzip+gzip", floors.libdeflate, "rounds/s");
  emit("filter-reencode-" + where, filter_best, "rounds/s");
  emit("pass-through-" + where, pass_best, "rounds/s");
  emit("filter-drop-pay-" + where, pay_best, "rounds/s");
  emit("ratio-filter-drop-pay-vs-zlib-floor-" + where, pay_best / floors.zlib, "x floor");
  emit("ratio-filter-vs-zlib-floor-" + where, filter_best / floors.zlib, "x floor");
  emit("ratio-filter-vs-libdeflate-floor-" + where, filter_best / floors.libdeflate, "x floor");
  emit("ratio-pass-through-vs-zlib-floor-" + where, pass_best / floors.zlib, "x floor");
  emit("ratio-pass-through-vs-libdeflate-floor-" + where, pass_best / floors.libdeflate, "x floor");
  fs::remove_all(work);
  return 0;
}
