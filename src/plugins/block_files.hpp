// Go Conduit's block file conventions, shared by file_reader and file_writer:
// filename patterns in Go's fmt form ("%[1]d_block.msgp.gz"), the encoding
// chosen by the extension (.msgp or .json, optionally .gz), gzip via zlib.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/block.hpp"
#include "core/block_json.hpp"

namespace conduit::plugins {

enum class BlockFormat { msgpack, json };

// Bounds on filename-pattern (conduit.toml(5)): a round's width, and the
// longest name the pattern can produce (NAME_MAX).
constexpr size_t kMaxRoundWidth = 64;
constexpr size_t kMaxFileNameBytes = 255;

class FilenamePattern {
 public:
  // Throws std::invalid_argument naming what is wrong: verbs other than %d,
  // %[1]d (with optional 0/- flags and a width up to kMaxRoundWidth) and %%,
  // no round verb, a name longer than kMaxFileNameBytes, or an extension other
  // than .msgp, .json, .msgp.gz, .json.gz.
  static FilenamePattern parse(std::string_view pattern);

  std::string format(uint64_t round) const;
  BlockFormat encoding() const { return encoding_; }
  bool gzip() const { return gzip_; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  BlockFormat encoding_ = BlockFormat::msgpack;
  bool gzip_ = false;
};

// gzip (RFC 1952) via zlib. decompress accepts concatenated members, as Go's
// gzip.Reader does, and refuses output beyond `limit` bytes.
std::string gzip_compress(std::string_view data, int level = 6);
std::string gzip_decompress(std::string_view data, size_t limit);

// Largest decompressed block file accepted (a guard against gzip bombs).
constexpr size_t kMaxBlockFileBytes = size_t{1} << 30;

// File bytes -> block, and block -> file bytes, for a pattern's encoding.
BlockData decode_block_file(std::string_view bytes, const FilenamePattern& pattern);
std::string encode_block_file(const BlockData& block, const FilenamePattern& pattern,
                              BlockEncodeOptions options);

}  // namespace conduit::plugins
