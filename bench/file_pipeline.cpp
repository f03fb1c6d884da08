// File pipeline throughput: file_reader (.msgp.gz) -> processor ->
// file_writer (.msgp.gz), durable (every fsync), over the fixture blocks
// repeated to a few hundred rounds, against codec floors measured in the same
// run on the same files, single-threaded, in this process:
//   zlib floor:       read + zlib gunzip + zlib gzip (level 6) of each file
//   libdeflate floor: read + libdeflate gunzip + gzip (level 6) of each file
// Two pipelines:
//   filter:       filter_processor drops the acfg transactions (most are kept),
//                 so every block is changed and re-encoded and re-compressed;
//   pass-through: noop processor, blocks unchanged.
// The floors are implemented here (not with the plugins' gzip) so that the same
// source measures any version of conduit.
// Usage: bench_file_pipeline WORKDIR [ROUNDS] [FIXTURES]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "codec_floor.hpp"
#include "core/block_msgpack.hpp"
#include "core/pipeline.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"

using namespace conduit;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spill(const fs::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

struct StopAfter : Observer {
  Pipeline* pipeline = nullptr;
  uint64_t last = 0;
  void on_exported(uint64_t round, std::size_t) override {
    if (round == last) pipeline->stop(StopMode::end_of_round, "bench");
  }
};

// Rounds 1..rounds, each a fixture block (1-9) with its round rewritten, as
// Go's file_writer would write them (zlib-compatible gzip, level 6).
void prepare(const fs::path& fixtures, const fs::path& in, uint64_t rounds) {
  fs::create_directories(in);
  fs::copy_file(fixtures / "genesis.json", in / "genesis.json",
                fs::copy_options::overwrite_existing);
  std::vector<std::string> templates;
  for (int i = 1; i <= 9; ++i)
    templates.push_back(
        bench::zlib_gunzip(slurp(fixtures / (std::to_string(i) + "_block.msgp.gz"))));
  for (uint64_t r = 1; r <= rounds; ++r) {
    BlockData block = BlockData::decode_msgpack(templates[(r - 1) % templates.size()]);
    mp::find(*mp::find(block.tree().root, "block"), "rnd")->via.u64 = r;
    spill(in / (std::to_string(r) + "_block.msgp.gz"), bench::zlib_gzip(block.encode_msgpack()));
  }
}

template <class Gunzip, class Gzip>
double floor_rounds_per_second(const fs::path& in, uint64_t rounds, Gunzip gunzip, Gzip gzip) {
  auto start = Clock::now();
  size_t sink = 0;
  for (uint64_t r = 1; r <= rounds; ++r)
    sink += gzip(gunzip(slurp(in / (std::to_string(r) + "_block.msgp.gz")))).size();
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (sink == 0) std::puts("");
  return rounds / s;
}

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
  prepare(fixtures, work / "in", rounds);
  bench::Libdeflate libdeflate;
  double zlib_best = 0, deflate_best = 0, filter_best = 0, pass_best = 0;
  for (int i = 0; i < 5; ++i) {  // interleaved repeats; best of each
    zlib_best = std::max(zlib_best, floor_rounds_per_second(work / "in", rounds, bench::zlib_gunzip,
                                                            bench::zlib_gzip));
    deflate_best =
        std::max(deflate_best, floor_rounds_per_second(
                                   work / "in", rounds,
                                   [&](const std::string& g) { return libdeflate.gunzip(g); },
                                   [&](const std::string& d) { return libdeflate.gzip(d); }));
    filter_best =
        std::max(filter_best, pipeline_rounds_per_second(work, work / "in", rounds, kFilter));
    pass_best = std::max(pass_best, pipeline_rounds_per_second(work, work / "in", rounds, kNoop));
  }
  std::string where = work.string().rfind("/dev/shm", 0) == 0 ? "tmpfs" : "disk";
  auto emit = [&](const std::string& name, double value, const char* unit) {
    std::printf(
        "{\"bench\": \"file-pipeline\", \"name\": \"%s\", \"value\": %.2f, \"unit\": \"%s\"}\n",
        name.c_str(), value, unit);
  };
  emit("floor-zlib-gunzip+gzip", zlib_best, "rounds/s");
  emit("floor-libdeflate-gunzip+gzip", deflate_best, "rounds/s");
  emit("filter-reencode-" + where, filter_best, "rounds/s");
  emit("pass-through-" + where, pass_best, "rounds/s");
  emit("ratio-filter-vs-zlib-floor-" + where, filter_best / zlib_best, "x floor");
  emit("ratio-filter-vs-libdeflate-floor-" + where, filter_best / deflate_best, "x floor");
  emit("ratio-pass-through-vs-zlib-floor-" + where, pass_best / zlib_best, "x floor");
  emit("ratio-pass-through-vs-libdeflate-floor-" + where, pass_best / deflate_best, "x floor");
  fs::remove_all(work);
  return 0;
}
