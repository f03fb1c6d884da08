#include "core/encoding.hpp"

#include <cstdint>

namespace conduit::encoding {

namespace {
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string base32_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += kBase32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = at(i) << 16;
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    if (last) {
      if (text[i + 3] == '=') ++pad;
      if (pad && text[i + 2] == '=') ++pad;
    }
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      if (k >= 4 - pad) {
        v <<= 6;
        continue;
      }
      int d = base64_value(text[i + k]);
      if (d < 0) return std::nullopt;
      v = (v << 6) | static_cast<uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
    // Go's StdEncoding is strict about the unused bits of the last quantum.
    if (pad == 1 && (v & 0xff) != 0) return std::nullopt;
    if (pad == 2 && (v & 0xffff) != 0) return std::nullopt;
  }
  return out;
}

}  // namespace conduit::encoding

namespace conduit::encoding {

size_t utf8_sequence_length(std::string_view text, size_t at) {
  auto byte = [&](size_t k) -> unsigned {
    return at + k < text.size() ? static_cast<unsigned char>(text[at + k]) : 0u;
  };
  auto continuation = [&](size_t k) { return (byte(k) & 0xc0) == 0x80; };
  unsigned lead = byte(0);
  if (at >= text.size()) return 0;
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return continuation(1) ? 2 : 0;
  if (lead >= 0xe0 && lead <= 0xef) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (lead == 0xe0 && byte(1) < 0xa0) return 0;   // overlong
    if (lead == 0xed && byte(1) >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (lead >= 0xf0 && lead <= 0xf4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xf0 && byte(1) < 0x90) return 0;   // overlong
    if (lead == 0xf4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

char32_t decode_utf8(std::string_view text, size_t& at) {
  size_t length = utf8_sequence_length(text, at);
  if (length == 0) {
    ++at;
    return U'\ufffd';
  }
  auto lead = static_cast<unsigned char>(text[at]);
  char32_t code_point = length == 1 ? lead : lead & (0x7fu >> length);
  for (size_t k = 1; k < length; ++k)
    code_point = code_point << 6 | (static_cast<unsigned char>(text[at + k]) & 0x3fu);
  at += length;
  return code_point;
}

void append_utf8(std::string& out, char32_t code_point) {
  auto put = [&](unsigned value) { out += static_cast<char>(value); };
  if (code_point < 0x80) {
    put(code_point);
  } else if (code_point < 0x800) {
    put(0xc0 | (code_point >> 6));
    put(0x80 | (code_point & 0x3f));
  } else if (code_point < 0x10000) {
    put(0xe0 | (code_point >> 12));
    put(0x80 | ((code_point >> 6) & 0x3f));
    put(0x80 | (code_point & 0x3f));
  } else {
    put(0xf0 | (code_point >> 18));
    put(0x80 | ((code_point >> 12) & 0x3f));
    put(0x80 | ((code_point >> 6) & 0x3f));
    put(0x80 | (code_point & 0x3f));
  }
}

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_escaped_ascii(std::string& out, unsigned char c, const Quoting& how) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    case 0:
      if (how.nul_as_replacement) {
        out += "\xef\xbf\xbd";
        return;
      }
      break;
  }
  out += "\\u00";
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

void append_invalid_byte(std::string& out, unsigned char c, const Quoting& how) {
  switch (how.invalid) {
    case Quoting::Invalid::escape_replacement:
      out += "\\ufffd";
      return;
    case Quoting::Invalid::escape_low_surrogate:
      out += "\\udc";
      out += kHex[c >> 4];
      out += kHex[c & 15];
      return;
    case Quoting::Invalid::replacement:
      out += "\xef\xbf\xbd";
      return;
  }
}

bool is_line_separator(std::string_view text, size_t at) {  // U+2028, U+2029
  return static_cast<unsigned char>(text[at]) == 0xe2 &&
         static_cast<unsigned char>(text[at + 1]) == 0x80 &&
         (static_cast<unsigned char>(text[at + 2]) & 0xfe) == 0xa8;
}

}  // namespace

void append_quoted(std::string& out, std::string_view text, const Quoting& how) {
  out += '"';
  size_t plain_from = 0;  // the run of bytes copied as they are
  auto flush = [&](size_t to) { out.append(text.data() + plain_from, to - plain_from); };
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      bool plain = c >= 0x20 && c != '"' && c != '\\' && !(c == 0x7f && how.escape_delete);
      if (!plain) {
        flush(i);
        append_escaped_ascii(out, c, how);
        plain_from = i + 1;
      }
      ++i;
      continue;
    }
    size_t length = utf8_sequence_length(text, i);
    if (length == 0) {
      flush(i);
      append_invalid_byte(out, c, how);
      plain_from = ++i;
    } else if (length == 3 && how.escape_line_separators && is_line_separator(text, i)) {
      flush(i);
      out += static_cast<unsigned char>(text[i + 2]) == 0xa8 ? "\\u2028" : "\\u2029";
      plain_from = i += 3;
    } else {
      i += length;
    }
  }
  flush(text.size());
  out += '"';
}

}  // namespace conduit::encoding
