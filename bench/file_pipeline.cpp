// File pipeline throughput (issue 10, figure 1): file_reader (.msgp.gz) -> noop ->
// file_writer (.msgp.gz) over the fixture blocks repeated to a few thousand
// rounds, against the codec floor measured in the same run: zlib gunzip + gzip
// (same level) of the same files, single-threaded, in this process. Run on a
// tmpfs (/dev/shm) to compare CPU work, and on disk to see the fsync cost.
// Usage: bench_file_pipeline WORKDIR [ROUNDS] [FIXTURES]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "core/block_msgpack.hpp"
#include "core/pipeline.hpp"
#include "core/registry.hpp"
#include "plugins/block_files.hpp"

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

struct StopAfter : PipelineObserver {
  Pipeline* pipeline = nullptr;
  uint64_t last = 0;
  void on_exported(uint64_t round, std::size_t) override {
    if (round == last) pipeline->stop(StopMode::end_of_round, "bench");
  }
};

// Rounds 1..rounds, each a fixture block (1-9) with its round rewritten.
void prepare(const fs::path& fixtures, const fs::path& in, uint64_t rounds) {
  fs::create_directories(in);
  fs::copy_file(fixtures / "genesis.json", in / "genesis.json",
                fs::copy_options::overwrite_existing);
  std::vector<std::string> templates;
  for (int i = 1; i <= 9; ++i)
    templates.push_back(plugins::gzip_decompress(
        slurp(fixtures / (std::to_string(i) + "_block.msgp.gz")), plugins::kMaxBlockFileBytes));
  for (uint64_t r = 1; r <= rounds; ++r) {
    BlockData block = BlockData::decode_msgpack(templates[(r - 1) % templates.size()]);
    mp::find(*mp::find(block.tree().root, "block"), "rnd")->via.u64 = r;
    spill(in / (std::to_string(r) + "_block.msgp.gz"),
          plugins::gzip_compress(block.encode_msgpack()));
  }
}

double floor_rounds_per_second(const fs::path& in, uint64_t rounds) {
  auto start = Clock::now();
  size_t sink = 0;
  for (uint64_t r = 1; r <= rounds; ++r) {
    std::string raw = plugins::gzip_decompress(slurp(in / (std::to_string(r) + "_block.msgp.gz")),
                                               plugins::kMaxBlockFileBytes);
    sink += plugins::gzip_compress(raw).size();
  }
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (sink == 0) std::puts("");
  return rounds / s;
}

double pipeline_rounds_per_second(const fs::path& work, const fs::path& in, uint64_t rounds,
                                  bool durable) {
  fs::path data = work / "data";
  fs::remove_all(data);
  fs::create_directories(data);
  std::string text = "[importer]\nname = \"file_reader\"\n[importer.config]\nblock-dir = \"" +
                     in.string() +
                     "\"\n[[processors]]\nname = \"noop\"\n[exporter]\nname = \"file_writer\"\n"
                     "[exporter.config]\nblock-dir = \"" +
                     (work / "out").string() + "\"\n";
  fs::remove_all(work / "out");
  Config config = parse_config(text, data, "bench.toml");
  Logger logger(nullptr, LogLevel::error);
  StopAfter observer;
  observer.last = rounds;
  Pipeline pipeline(build_plugins(builtin_registry(), config),
                    {.data_dir = data, .next_round_override = 1, .durable_checkpoint = durable},
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

}  // namespace

int main(int argc, char** argv) {
  fs::path work = argc > 1 ? fs::path(argv[1]) / "file-pipeline" : "/dev/shm/conduit-bench-files";
  uint64_t rounds = argc > 2 ? std::stoull(argv[2]) : 2000;
  fs::path fixtures = argc > 3 ? argv[3] : "../shared/fixtures/conduit-blocks";
  if (const char* env = std::getenv("CONDUIT_FIXTURES"); env && argc <= 3) fixtures = env;
  if (!fs::exists(fixtures / "1_block.msgp.gz")) {
    std::fprintf(stderr, "bench_file_pipeline: no fixtures at %s; skipped\n", fixtures.c_str());
    return 0;
  }
  fs::remove_all(work);
  prepare(fixtures, work / "in", rounds);
  double floor_best = 0, pipe_best = 0;
  for (int i = 0; i < 3; ++i) {  // interleaved repeats; best of each
    floor_best = std::max(floor_best, floor_rounds_per_second(work / "in", rounds));
    pipe_best = std::max(pipe_best, pipeline_rounds_per_second(work, work / "in", rounds, true));
  }
  std::string where = work.string().rfind("/dev/shm", 0) == 0 ? "tmpfs" : "disk";
  std::printf(
      "{\"bench\": \"file-pipeline\", \"name\": \"codec-floor-gunzip+gzip\", \"value\": %.1f, "
      "\"unit\": \"rounds/s\"}\n",
      floor_best);
  std::printf(
      "{\"bench\": \"file-pipeline\", \"name\": \"file_reader-noop-file_writer-%s\", \"value\": "
      "%.1f, \"unit\": \"rounds/s\"}\n",
      where.c_str(), pipe_best);
  std::printf(
      "{\"bench\": \"file-pipeline\", \"name\": \"ratio-pipeline-vs-floor-%s\", \"value\": %.2f, "
      "\"unit\": \"x floor\"}\n",
      where.c_str(), pipe_best / floor_best);
  fs::remove_all(work);
  return 0;
}
