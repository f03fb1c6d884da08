// libFuzzer target: arbitrary bytes as a JSON block. The reader may refuse the
// input but must never crash; a block it accepts must encode and re-read to the
// same msgpack.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/block_json.hpp"

using namespace conduit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  BlockData block;
  try {
    block = decode_block_json(text);
  } catch (const BlockDecodeError&) {
    return 0;
  }
  std::string msgpack = block.encode_msgpack();
  std::string json;
  try {
    json = encode_block_json(block);
  } catch (const BlockEncodeError&) {
    std::abort();  // everything the reader builds has a JSON form
  }
  try {
    if (decode_block_json(json).encode_msgpack() != msgpack) std::abort();
  } catch (const BlockDecodeError&) {
    std::abort();
  }
  return 0;
}
