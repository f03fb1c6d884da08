// BlockData <-> Algorand JSON, as Go Conduit's file_writer writes it
// (go-codec JSON handle: canonical key order, 2-space indent, MapKeyAsString,
// HTML characters as is): byte fields base64, address fields base64 too (the
// sdk's Address.MarshalText is base64 of the 32 bytes), integer map keys as
// decimal strings. Optionally addresses as checksummed base32, for people.
//
// Reading the JSON back gives the same msgpack: a field schema (block_json.cpp)
// says which strings are bytes or addresses and which map keys are integers or
// bytes. Addresses are read in either form, as the sdk's UnmarshalText does.
// Unknown fields survive as their JSON types (their strings stay strings).
//
// Strings that are not UTF-8 (binary box names in KvMods, binary TEAL values,
// logs): Go writes \ufffd for each bad byte, losing it. By default we write
// each such byte as a lone surrogate \udc80..\udcff (the "surrogateescape"
// convention), which Go also reads as U+FFFD and which we read back to the
// original byte, so msgp -> json -> msgp is exact. Utf8Mode::replace writes
// Go's \ufffd instead (byte-identical to Go's files, not reversible).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/block.hpp"

namespace conduit {

class BlockEncodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class AddressForm : uint8_t { base64, base32 };
enum class Utf8Mode : uint8_t { escape, replace };

struct BlockEncodeOptions {
  bool drop_certificate = false;  // omit the top-level `cert` (file_writer's drop-certificate)
  AddressForm addresses = AddressForm::base64;  // JSON only; base64 is what Go writes
  Utf8Mode invalid_utf8 = Utf8Mode::escape;     // JSON only
};

std::string encode_block_json(const BlockData& block, BlockEncodeOptions options = {});
// Throws BlockDecodeError on malformed JSON or a field of the wrong shape, and
// BlockTooLargeError once the tree built would take more than `max_memory`
// bytes (BlockData::memory_cost).
BlockData decode_block_json(std::string_view json, std::size_t max_memory = SIZE_MAX);

// msgpack, optionally without the certificate.
std::string encode_block_msgpack(const BlockData& block, BlockEncodeOptions options = {});

}  // namespace conduit
