// libFuzzer target: arbitrary bytes as a msgpack block. Decoding may refuse the
// input (BlockDecodeError) but must never crash; a block it accepts must read
// the round and count its tree holds, re-encode stably and survive the JSON
// writer and reader.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/block_json.hpp"

using namespace conduit;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  BlockData block;
  try {
    block = BlockData::decode_msgpack(bytes);
  } catch (const BlockDecodeError&) {
    return 0;
  }
  // The round and count read from the bytes (the tree is built lazily) are
  // what the tree says.
  const uint64_t round = block.round();
  const size_t txns = block.txn_count();
  BlockData reread = block.clone();
  reread.refresh();
  if (reread.round() != round || reread.txn_count() != txns) std::abort();
  std::string once = block.encode_msgpack();
  if (BlockData::decode_msgpack(once).encode_msgpack() != once) std::abort();
  if (block.clone().encode_msgpack() != once) std::abort();

  std::string json;
  try {
    json = encode_block_json(block);
  } catch (const BlockEncodeError&) {
    return 0;  // extension types, non-finite floats, odd map keys
  }
  try {
    BlockData back = decode_block_json(json);
    // What the reader accepts, the writer must reproduce exactly.
    if (encode_block_json(back) != json) std::abort();
  } catch (const BlockDecodeError&) {
    // A string where the schema wants bytes (or similar): refused, not crashed.
  }
  return 0;
}
