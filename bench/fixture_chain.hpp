// The benchmarks' chain: the fixture blocks 1-9 cycled to N rounds, written as
// Go's file_writer would write them (msgpack, zlib-compatible gzip level 6),
// and the single-thread codec floor over those files.
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "codec_floor.hpp"
#include "core/block_msgpack.hpp"

namespace bench {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void spill(const std::filesystem::path& p, const std::string& data) {
  std::ofstream(p, std::ios::binary) << data;
}

inline std::string block_file_name(uint64_t round) {
  return std::to_string(round) + "_block.msgp.gz";
}

// Rounds 1..rounds in `in`, each a fixture block (1-9) with its round rewritten,
// round 0 and genesis.json.
inline void prepare_chain(const std::filesystem::path& fixtures, const std::filesystem::path& in,
                          uint64_t rounds) {
  namespace fs = std::filesystem;
  fs::create_directories(in);
  fs::copy_file(fixtures / "genesis.json", in / "genesis.json",
                fs::copy_options::overwrite_existing);
  // Round 0 as it is: a database (the postgresql exporter) starts there.
  fs::copy_file(fixtures / block_file_name(0), in / block_file_name(0),
                fs::copy_options::overwrite_existing);
  std::vector<std::string> templates;
  for (int i = 1; i <= 9; ++i)
    templates.push_back(zlib_gunzip(slurp(fixtures / block_file_name(i))));
  for (uint64_t r = 1; r <= rounds; ++r) {
    auto block = conduit::BlockData::decode_msgpack(templates[(r - 1) % templates.size()]);
    conduit::mp::find(*conduit::mp::find(block.tree().root, "block"), "rnd")->via.u64 = r;
    spill(in / block_file_name(r), zlib_gzip(block.encode_msgpack()));
  }
}

// Single-threaded read + gunzip + gzip of rounds 1..rounds of `in`, rounds/s.
template <class Gunzip, class Gzip>
double floor_rounds_per_second(const std::filesystem::path& in, uint64_t rounds, Gunzip gunzip,
                               Gzip gzip) {
  auto start = std::chrono::steady_clock::now();
  size_t sink = 0;
  for (uint64_t r = 1; r <= rounds; ++r)
    sink += gzip(gunzip(slurp(in / block_file_name(r)))).size();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sink == 0 ? 0 : rounds / s;
}

// The best of the zlib and libdeflate floors so far and one more measurement
// of each (interleaved with the runs they are compared with).
struct Floors {
  double zlib = 0;
  double libdeflate = 0;
  void measure(const std::filesystem::path& in, uint64_t rounds, Libdeflate& codec) {
    zlib = std::max(zlib, floor_rounds_per_second(in, rounds, zlib_gunzip, zlib_gzip));
    libdeflate =
        std::max(libdeflate, floor_rounds_per_second(
                                 in, rounds, [&](const std::string& g) { return codec.gunzip(g); },
                                 [&](const std::string& d) { return codec.gzip(d); }));
  }
};

}  // namespace bench
