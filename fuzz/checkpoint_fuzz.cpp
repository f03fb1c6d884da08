// libFuzzer target: arbitrary bytes as metadata.json (issue 14). The reader may
// refuse the input (CheckpointError) but must never crash; what it accepts has a
// next-round in [0, 2^64-1] and writes back (with its unknown keys) to text it
// reads again as the same checkpoint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/checkpoint.hpp"

using namespace conduit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Metadata metadata;
  nlohmann::ordered_json unknown;
  try {
    metadata = parse_metadata(text, "metadata.json", &unknown);
  } catch (const CheckpointError&) {
    return 0;
  }
  nlohmann::ordered_json json;
  json["genesis-hash"] = metadata.genesis_hash;
  json["network"] = metadata.network;
  json["next-round"] = metadata.next_round;
  for (auto& [key, value] : unknown.items()) json[key] = value;
  std::string written = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  try {
    Metadata again = parse_metadata(written, "metadata.json");
    if (again.next_round != metadata.next_round) std::abort();
  } catch (const CheckpointError&) {
    std::abort();
  }
  return 0;
}
