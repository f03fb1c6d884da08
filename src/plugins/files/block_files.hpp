// Go Conduit's block file conventions, shared by file_reader and file_writer:
// filename patterns in Go's fmt form ("%[1]d_block.msgp.gz"), the encoding
// chosen by the extension (.msgp or .json, optionally .gz), gzip via libdeflate
// (whole buffers: a block file is read and written in one piece).
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
  // The file format as a BlockData::encoded() tag: "msgp", "msgp.gz", "json", "json.gz".
  const std::string& format_tag() const { return format_tag_; }

 private:
  std::string text_;
  std::string format_tag_;
  BlockFormat encoding_ = BlockFormat::msgpack;
  bool gzip_ = false;
};

// gzip (RFC 1952) via libdeflate; the output is a standard gzip member (zcat,
// Go's compress/gzip). decompress accepts concatenated members, as Go's
// gzip.Reader does, and refuses output beyond `limit` bytes: it never allocates
// more than `limit` bytes for the output, whatever the gzip trailer claims.
std::string gzip_compress(std::string_view data, int level = 6);
std::string gzip_decompress(std::string_view data, size_t limit);

// Default bound on one block file, compressed or not, and on its decompressed
// content (file_reader's max-block-bytes): a gzip bomb stops here. Algorand
// caps a block's transactions at 5 MB (consensus MaxTxnBytesPerBlock); with
// ApplyData, state deltas and the certificate, real blocks stay within a few
// tens of MB, so 256 MiB leaves ample headroom while bounding memory.
constexpr size_t kMaxBlockFileBytes = size_t{256} << 20;

// File bytes -> block, and block -> file bytes, for a pattern's encoding.
// decode keeps `bytes` in the block (BlockData::set_encoded) for pass-through,
// and refuses a block whose decoded tree would pass `max_block_memory`
// (BlockTooLargeError).
BlockData decode_block_file(std::string bytes, const FilenamePattern& pattern,
                            size_t max_block_bytes = kMaxBlockFileBytes,
                            size_t max_block_memory = kDefaultMaxBlockMemory);
std::string encode_block_file(const BlockData& block, const FilenamePattern& pattern,
                              BlockEncodeOptions options);

}  // namespace conduit::plugins
