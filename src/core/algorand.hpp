// Algorand's small encodings: SHA-512/256, checksummed base32 addresses,
// and the genesis document (network, id, genesis hash as Go Conduit computes it).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/block.hpp"
#include "core/encoding.hpp"

namespace conduit::algorand {

using Digest = std::array<uint8_t, 32>;

// SHA-512/256 (FIPS 180-4), via OpenSSL.
Digest sha512_256(std::string_view data);

// The 58-character address: base32 (no padding) of the 32 bytes followed by the
// last 4 bytes of their SHA-512/256.
std::string encode_address(std::string_view bytes32);
// The 32 bytes of a checksummed address; nullopt when malformed, with a bad
// checksum or non-canonical (as go-algorand-sdk's DecodeAddress).
std::optional<std::string> decode_address(std::string_view address);

class GenesisError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses a genesis.json and computes its hash as Go Conduit does:
// SHA-512/256 over "GE" + the canonical msgpack of go-algorand-sdk's Genesis
// struct (sorted keys, empty fields omitted except in allocations). `hash` is
// base64, as metadata.json stores it; `json` is the document as given.
Genesis parse_genesis(std::string_view json);

}  // namespace conduit::algorand
