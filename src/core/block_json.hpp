// BlockData <-> Algorand JSON, as Go Conduit's file_writer writes it
// (go-codec JSON handle: canonical key order, 2-space indent, MapKeyAsString,
// HTML characters as is): byte fields base64, address fields as checksummed
// base32 addresses, integer map keys as decimal strings.
//
// Reading the JSON back gives the same msgpack: a field schema (block_json.cpp)
// says which strings are bytes or addresses and which map keys are integers or
// bytes. Unknown fields survive as their JSON types (their strings stay strings).
//
// One deliberate difference: Go replaces bytes of a string that are not UTF-8
// (binary box names in KvMods, binary TEAL values, logs) with \ufffd, losing
// them. We write each such byte as a lone surrogate \udc80..\udcff (the
// "surrogateescape" convention), which Go also reads as U+FFFD, and which we
// read back to the original byte, so msgp -> json -> msgp is exact.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "core/block.hpp"

namespace conduit {

class BlockEncodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct BlockEncodeOptions {
  bool drop_certificate = false;  // omit the top-level `cert` (file_writer's drop-certificate)
};

std::string encode_block_json(const BlockData& block, BlockEncodeOptions options = {});
// Throws BlockDecodeError on malformed JSON or a field of the wrong shape.
BlockData decode_block_json(std::string_view json);

// msgpack, optionally without the certificate.
std::string encode_block_msgpack(const BlockData& block, BlockEncodeOptions options = {});

}  // namespace conduit
