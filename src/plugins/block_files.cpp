#include "plugins/block_files.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace conduit::plugins {

FilenamePattern FilenamePattern::parse(std::string_view pattern) {
  FilenamePattern result;
  result.text_ = std::string(pattern);
  std::string_view rest = pattern;
  auto ends_with = [](std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
  };
  if (ends_with(rest, ".gz")) {
    result.gzip_ = true;
    rest.remove_suffix(3);
  }
  if (ends_with(rest, ".msgp"))
    result.encoding_ = BlockFormat::msgpack;
  else if (ends_with(rest, ".json"))
    result.encoding_ = BlockFormat::json;
  else
    throw std::invalid_argument("unrecognized export format: '" + std::string(pattern) +
                                "' (use .msgp or .json, optionally followed by .gz)");
  // Validate the verbs once; format() relies on it. The longest name the
  // pattern can produce must be a valid file name (NAME_MAX), so an absurd
  // width fails here, at configuration, not after the data dirs were written.
  bool has_round = false;
  size_t longest = 0;  // the longest file name the pattern can produce
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      ++longest;
      continue;
    }
    if (++i < pattern.size() && pattern[i] == '%') {
      ++longest;
      continue;
    }
    if (pattern.substr(i, 3) == "[1]") i += 3;
    while (i < pattern.size() && (pattern[i] == '0' || pattern[i] == '-')) ++i;
    size_t width = 0;
    for (; i < pattern.size() && pattern[i] >= '0' && pattern[i] <= '9'; ++i)
      width = std::min<size_t>(width * 10 + static_cast<size_t>(pattern[i] - '0'), 100000);
    if (i >= pattern.size() || pattern[i] != 'd')
      throw std::invalid_argument("filename-pattern '" + std::string(pattern) +
                                  "': only %d, %[1]d (with width) and %% are supported");
    if (width > kMaxRoundWidth)
      throw std::invalid_argument("filename-pattern '" + std::string(pattern) + "': width " +
                                  (width >= 100000 ? "too large" : std::to_string(width)) +
                                  " is more than " + std::to_string(kMaxRoundWidth));
    longest += std::max<size_t>(width, 20);  // 2^64-1 has 20 digits
    has_round = true;
  }
  if (longest > kMaxFileNameBytes)
    throw std::invalid_argument("filename-pattern '" + std::string(pattern) + "': names up to " +
                                std::to_string(longest) + " bytes long; a file name has at most " +
                                std::to_string(kMaxFileNameBytes));
  if (!has_round)
    throw std::invalid_argument("filename-pattern '" + std::string(pattern) +
                                "' has no round verb such as %[1]d");
  if (pattern.find('/') != std::string_view::npos)
    throw std::invalid_argument("filename-pattern '" + std::string(pattern) +
                                "' must be a file name, not a path");
  return result;
}

std::string FilenamePattern::format(uint64_t round) const {
  std::string out;
  const std::string& p = text_;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '%') {
      out += p[i];
      continue;
    }
    ++i;
    if (p[i] == '%') {
      out += '%';
      continue;
    }
    if (p.compare(i, 3, "[1]") == 0) i += 3;
    bool zero = false, left = false;
    for (; p[i] == '0' || p[i] == '-'; ++i) (p[i] == '0' ? zero : left) = true;
    size_t width = 0;
    for (; p[i] >= '0' && p[i] <= '9'; ++i) width = width * 10 + static_cast<size_t>(p[i] - '0');
    std::string digits = std::to_string(round);
    if (digits.size() < width) {
      std::string pad(width - digits.size(), (zero && !left) ? '0' : ' ');
      digits = left ? digits + pad : pad + digits;
    }
    out += digits;
  }
  return out;
}

std::string gzip_compress(std::string_view data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw std::runtime_error("zlib: deflateInit2 failed");
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("zlib: deflate failed");
  out.resize(produced);
  return out;
}

std::string gzip_decompress(std::string_view data, size_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    throw std::runtime_error("zlib: inflateInit2 failed");
  std::string out;
  out.resize(std::max<size_t>(data.size() * 4, 4096));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  size_t produced = 0;
  for (;;) {
    if (produced == out.size()) {
      if (out.size() >= limit) {
        inflateEnd(&zs);
        throw BlockDecodeError("decompressed data exceeds " + std::to_string(limit) + " bytes");
      }
      out.resize(std::min(out.size() * 2, limit));
    }
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);  // another gzip member follows
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw BlockDecodeError("truncated gzip data");
    }
    if (rc == Z_BUF_ERROR) continue;
    std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
    inflateEnd(&zs);
    throw BlockDecodeError("corrupt gzip data: " + msg);
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

BlockData decode_block_file(std::string_view bytes, const FilenamePattern& pattern) {
  std::string plain;
  if (pattern.gzip()) {
    plain = gzip_decompress(bytes, kMaxBlockFileBytes);
    bytes = plain;
  }
  return pattern.encoding() == BlockFormat::json ? decode_block_json(bytes)
                                                 : BlockData::decode_msgpack(bytes);
}

std::string encode_block_file(const BlockData& block, const FilenamePattern& pattern,
                              BlockEncodeOptions options) {
  std::string bytes = pattern.encoding() == BlockFormat::json
                          ? encode_block_json(block, options)
                          : encode_block_msgpack(block, options);
  return pattern.gzip() ? gzip_compress(bytes) : bytes;
}

}  // namespace conduit::plugins
