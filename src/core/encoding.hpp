// Byte-to-text encodings shared by the core and the plugins, written once:
// base64 as Go's encoding/base64.StdEncoding, base32 as Algorand prints
// addresses and transaction ids, UTF-8 as Go's unicode/utf8 reads it, and the
// quoting of strings for JSON (block files, PostgreSQL's jsonb) and TOML.
#pragma once

#include <cstddef>
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

// Length (1-4) of the well-formed UTF-8 sequence at text[at], or 0 where Go's
// utf8.DecodeRuneInString returns RuneError of width 1: a stray continuation
// byte, a lead byte C0, C1 or F5-FF, an overlong form, a surrogate, a value
// above U+10FFFF or a sequence cut short.
size_t utf8_sequence_length(std::string_view text, size_t at);
// The code point at text[at], advancing `at` past it; U+FFFD and one byte
// where the sequence is not well-formed (as Go decodes).
char32_t decode_utf8(std::string_view text, size_t& at);
// Appends `code_point` (at most U+10FFFF) as UTF-8.
void append_utf8(std::string& out, char32_t code_point);

// How a quoted string treats what JSON or TOML cannot carry as is. The
// defaults are go-codec's (Go Conduit's block files, HTMLCharsAsIs).
struct Quoting {
  enum class Invalid : unsigned char {
    escape_replacement,    // "\ufffd" per byte that starts no valid sequence (Go)
    escape_low_surrogate,  // "\udcXX": the byte kept, so decoding restores it
    replacement,           // U+FFFD written as UTF-8
  };
  Invalid invalid = Invalid::escape_replacement;
  bool nul_as_replacement = false;     // PostgreSQL's jsonb refuses \u0000
  bool escape_line_separators = true;  // U+2028 and U+2029, as Go does
  bool escape_delete = false;          // TOML's basic strings refuse a raw DEL
};
// Appends `text` as a double-quoted JSON string (also a valid TOML basic
// string when escape_delete is set).
void append_quoted(std::string& out, std::string_view text, const Quoting& how = {});

}  // namespace conduit::encoding
