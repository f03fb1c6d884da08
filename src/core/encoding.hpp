// Byte-to-text encodings shared by the core and the plugins, written once:
// base64 as Go's encoding/base64.StdEncoding, base32 as Algorand prints
// addresses and transaction ids.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace conduit::encoding {

// Standard base64 with padding (Go's base64.StdEncoding).
std::string base64_encode(std::string_view bytes);
// Strict: rejects bad characters, bad padding and non-zero trailing bits.
std::optional<std::string> base64_decode(std::string_view text);
// RFC 4648 base32 without padding.
std::string base32_encode(std::string_view bytes);

}  // namespace conduit::encoding
