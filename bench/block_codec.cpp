// Block codec throughput on Go Conduit's fixture blocks, next to zlib's own
// gunzip and gzip of the same files in the same run (issue 3's yardstick).
// Usage: bench_block_codec [FIXTURES_DIR] [SECONDS_PER_CASE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/block_json.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/registry.hpp"
#include "plugins/block_files.hpp"

using namespace conduit;
namespace fs = std::filesystem;

namespace {

// Keeps results alive (a volatile store the optimiser cannot drop).
struct Sink {
  volatile size_t total = 0;
  void operator+=(size_t v) { total = total + v; }
} sink;

// Runs `pass` (one pass over every block) until `seconds` have elapsed; returns
// the elapsed seconds per pass.
double time_pass(double seconds, const std::function<void()>& pass) {
  using clock = std::chrono::steady_clock;
  pass();  // warm-up
  int passes = 0;
  auto start = clock::now();
  double elapsed = 0;
  do {
    pass();
    ++passes;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return elapsed / passes;
}

void report(const char* name, double per_pass, size_t bytes, size_t blocks) {
  std::printf("%-28s %10.1f MB/s %12.0f blocks/s\n", name, bytes / per_pass / 1e6,
              blocks / per_pass);
  std::printf(
      "{\"bench\": \"block-codec\", \"name\": \"%s\", \"value\": %.1f, \"unit\": \"MB/s\", "
      "\"blocks_per_s\": %.0f}\n",
      name, bytes / per_pass / 1e6, blocks / per_pass);
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = argc > 1                          ? fs::path(argv[1])
                 : std::getenv("CONDUIT_FIXTURES") ? fs::path(std::getenv("CONDUIT_FIXTURES"))
                                                   : fs::path("../shared/fixtures/conduit-blocks");
  double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;

  std::vector<std::string> gz, msgp, json;
  for (int r = 0;; ++r) {
    fs::path file = dir / (std::to_string(r) + "_block.msgp.gz");
    if (!fs::exists(file)) break;
    gz.push_back(read_file(file));
    msgp.push_back(plugins::gzip_decompress(gz.back(), plugins::kMaxBlockFileBytes));
    json.push_back(encode_block_json(BlockData::decode_msgpack(msgp.back())));
  }
  if (msgp.empty()) {
    std::fprintf(stderr, "no N_block.msgp.gz files in %s\n", dir.c_str());
    return 1;
  }
  size_t msgp_bytes = 0, json_bytes = 0, gz_bytes = 0;
  for (size_t i = 0; i < msgp.size(); ++i)
    msgp_bytes += msgp[i].size(), json_bytes += json[i].size(), gz_bytes += gz[i].size();
  std::vector<BlockData> blocks;
  for (const auto& m : msgp) blocks.push_back(BlockData::decode_msgpack(m));
  size_t n = msgp.size();

  std::printf("%zu blocks: %zu bytes msgpack, %zu bytes JSON, %zu bytes gzip\n", n, msgp_bytes,
              json_bytes, gz_bytes);
  std::printf("MB/s are of the uncompressed msgpack (JSON rows: of the JSON text)\n\n");

  report("zlib gunzip",
         time_pass(seconds,
                   [&] {
                     for (const auto& g : gz) sink += plugins::gzip_decompress(g, 1 << 30).size();
                   }),
         msgp_bytes, n);
  report("zlib gzip (level 6)",
         time_pass(seconds,
                   [&] {
                     for (const auto& m : msgp) sink += plugins::gzip_compress(m).size();
                   }),
         msgp_bytes, n);
  report("msgpack decode",
         time_pass(seconds,
                   [&] {
                     for (const auto& m : msgp) sink += BlockData::decode_msgpack(m).txn_count();
                   }),
         msgp_bytes, n);
  report("msgpack encode",
         time_pass(seconds,
                   [&] {
                     for (const auto& b : blocks) sink += b.encode_msgpack().size();
                   }),
         msgp_bytes, n);
  report("JSON encode",
         time_pass(seconds,
                   [&] {
                     for (const auto& b : blocks) sink += encode_block_json(b).size();
                   }),
         json_bytes, n);
  report("JSON decode",
         time_pass(seconds,
                   [&] {
                     for (const auto& j : json) sink += decode_block_json(j).txn_count();
                   }),
         json_bytes, n);
  report(
      "file read .msgp.gz (total)",
      time_pass(seconds,
                [&] {
                  for (const auto& g : gz)
                    sink +=
                        BlockData::decode_msgpack(plugins::gzip_decompress(g, 1 << 30)).txn_count();
                }),
      msgp_bytes, n);

  // filter_processor: top-level pay transactions and anything with an inner pay.
  Config config = parse_config(R"([importer]
name = "noop"
[[processors]]
name = "filter_processor"
[processors.config]
search-inner = true
omit-group-transactions = false
[[processors.config.filters]]
any = [ { tag = "txn.type", expression-type = "equal", expression = "pay" },
        { tag = "txn.amt", expression-type = "greater-than", expression = 1000000 } ]
[exporter]
name = "noop"
)",
                               "/nonexistent", "bench.toml");
  auto plugins = build_plugins(builtin_registry(), config);
  size_t txns = 0;
  for (const auto& b : blocks) txns += b.txn_count();
  std::vector<BlockData> copies;
  double per_pass = time_pass(seconds, [&] {
    copies.clear();
    for (const auto& b : blocks) copies.push_back(b.clone());
    for (auto& c : copies) plugins.processors[0]->process(c, {});
  });
  double clone_only = time_pass(seconds, [&] {
    copies.clear();
    for (const auto& b : blocks) copies.push_back(b.clone());
  });
  std::printf("%-28s %10.0f txns/s %12.0f blocks/s (each block cloned first)\n",
              "filter_processor + clone", txns / per_pass, n / per_pass);
  std::printf("%-28s %10.0f txns/s (clone time subtracted; noisier)\n", "filter_processor alone",
              txns / std::max(per_pass - clone_only, 1e-9));

  // Matching cost alone: a filter every transaction passes leaves the blocks
  // unchanged, so no copies are needed. It formats each sender as an address.
  Config match_all = parse_config(R"([importer]
name = "noop"
[[processors]]
name = "filter_processor"
[processors.config]
search-inner = true
[[processors.config.filters]]
all = [ { tag = "txn.fee", expression-type = "greater-than-equal", expression = 0 },
        { tag = "txn.snd", expression-type = "regex", expression = "^[A-Z2-7]+$" } ]
[exporter]
name = "noop"
)",
                                  "/nonexistent", "bench.toml");
  auto all_plugins = build_plugins(builtin_registry(), match_all);
  double match_pass = time_pass(seconds, [&] {
    for (auto& b : blocks) all_plugins.processors[0]->process(b, {});
  });
  std::printf("%-28s %10.0f txns/s %12.0f blocks/s (every txn evaluated, none dropped)\n",
              "filter_processor matching", txns / match_pass, n / match_pass);
  return 0;
}
