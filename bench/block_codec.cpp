// Block codec throughput on Go Conduit's fixture blocks, next to zlib's own
// gunzip and gzip of the same files in the same run (the yardstick).
// Usage: bench_block_codec [FIXTURES_DIR] [SECONDS_PER_CASE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "codec_floor.hpp"
#include "core/block_json.hpp"
#include "core/block_msgpack.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "plugins/files/block_files.hpp"

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
    msgp.push_back(bench::zlib_gunzip(gz.back()));
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
                     for (const auto& g : gz) sink += bench::zlib_gunzip(g).size();
                   }),
         msgp_bytes, n);
  report("zlib gzip (level 6)",
         time_pass(seconds,
                   [&] {
                     for (const auto& m : msgp) sink += bench::zlib_gzip(m).size();
                   }),
         msgp_bytes, n);
  bench::Libdeflate libdeflate;
  report("libdeflate gunzip",
         time_pass(seconds,
                   [&] {
                     for (const auto& g : gz) sink += libdeflate.gunzip(g).size();
                   }),
         msgp_bytes, n);
  report("libdeflate gzip (level 6)",
         time_pass(seconds,
                   [&] {
                     for (const auto& m : msgp) sink += libdeflate.gzip(m).size();
                   }),
         msgp_bytes, n);
  report("conduit gunzip (block_files)",
         time_pass(seconds,
                   [&] {
                     for (const auto& g : gz) sink += plugins::gzip_decompress(g, 1 << 30).size();
                   }),
         msgp_bytes, n);
  report("conduit gzip (block_files)",
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

  // filter_processor, filtering against evaluating only. Both evaluate the same
  // two conditions on every transaction; "evaluate" keeps them all (the block is
  // unchanged), "filter" drops the senders starting with Z or 2..7 and
  // so edits the payset. Between passes the payset is put back from a shallow
  // copy (the entries are 24-byte references into the block's zone), timed
  // separately and subtracted: no block is cloned.
  auto filter_config = [](const std::string& regex) {
    return parse_config(R"([importer]
name = "noop"
[[processors]]
name = "filter_processor"
[processors.config]
search-inner = true
[[processors.config.filters]]
all = [ { tag = "txn.fee", expression-type = "greater-than-equal", expression = 0 },
        { tag = "txn.snd", expression-type = "regex", expression = ")" +
                            regex + R"(" } ]
[exporter]
name = "noop"
)",
                        "/nonexistent", "bench.toml");
  };
  size_t txns = 0;
  for (const auto& b : blocks) txns += b.txn_count();
  // Saved tops: each root map's entries and each payset's entries.
  struct Saved {
    std::vector<msgpack::object_kv> root;
    msgpack::object* payset = nullptr;
    std::vector<msgpack::object> entries;
  };
  std::vector<Saved> saved;
  for (auto& b : blocks) {
    Saved s;
    auto& root = b.tree().root;
    s.root.assign(root.via.map.ptr, root.via.map.ptr + root.via.map.size);
    s.payset = mp::find(root, "payset");
    if (s.payset)
      s.entries.assign(s.payset->via.array.ptr, s.payset->via.array.ptr + s.payset->via.array.size);
    saved.push_back(std::move(s));
  }
  auto restore = [&] {
    for (size_t i = 0; i < blocks.size(); ++i) {
      auto& root = blocks[i].tree().root;
      std::copy(saved[i].root.begin(), saved[i].root.end(), root.via.map.ptr);
      root.via.map.size = static_cast<uint32_t>(saved[i].root.size());
      if (auto* payset = mp::find(root, "payset")) {
        std::copy(saved[i].entries.begin(), saved[i].entries.end(), payset->via.array.ptr);
        payset->via.array.size = static_cast<uint32_t>(saved[i].entries.size());
      }
      blocks[i].refresh();
    }
  };
  Config evaluate_config = filter_config("^[A-Z2-7]+$");
  Config filter_config_ = filter_config("^[A-Y][A-Z2-7]+$");
  auto evaluate = build_plugins(builtin_registry(), evaluate_config);
  auto filter = build_plugins(builtin_registry(), filter_config_);
  size_t kept = 0;
  double restore_pass = time_pass(seconds, restore);
  double evaluate_pass = time_pass(seconds, [&] {
    restore();
    for (auto& b : blocks) evaluate.processors[0]->process(b, {});
  });
  double filter_pass = time_pass(seconds, [&] {
    restore();
    for (auto& b : blocks) filter.processors[0]->process(b, {});
  });
  for (auto& b : blocks) kept += b.txn_count();
  restore();
  double evaluate_rate = txns / std::max(evaluate_pass - restore_pass, 1e-9);
  double filter_rate = txns / std::max(filter_pass - restore_pass, 1e-9);
  std::printf("filter keeps %zu of %zu transactions\n", kept, txns);
  auto emit = [](const char* name, double value, const char* unit) {
    std::printf("{\"bench\": \"filter\", \"name\": \"%s\", \"value\": %.2f, \"unit\": \"%s\"}\n",
                name, value, unit);
  };
  emit("filter_processor-evaluate-only", evaluate_rate, "txns/s");
  emit("filter_processor-filtering", filter_rate, "txns/s");
  emit("ratio-filtering-vs-evaluate-only", filter_rate / evaluate_rate, "x baseline");
  return 0;
}
