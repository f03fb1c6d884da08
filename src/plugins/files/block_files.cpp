#include "plugins/files/block_files.hpp"

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>

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
  result.format_tag_ = std::string(result.encoding_ == BlockFormat::json ? "json" : "msgp") +
                       (result.gzip_ ? ".gz" : "");
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

namespace {

// libdeflate's (de)compressors are reusable but not thread-safe: one per thread
// (and per level), kept for the thread's life so no block pays for the setup.
struct CompressorDeleter {
  void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
};
struct DecompressorDeleter {
  void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
};

libdeflate_compressor* thread_compressor(int level) {
  thread_local std::unique_ptr<libdeflate_compressor, CompressorDeleter> compressors[13];
  if (level < 0 || level > 12) throw std::invalid_argument("gzip level must be 0..12");
  auto& slot = compressors[level];
  if (!slot) slot.reset(libdeflate_alloc_compressor(level));
  if (!slot) throw std::bad_alloc();
  return slot.get();
}

libdeflate_decompressor* thread_decompressor() {
  thread_local std::unique_ptr<libdeflate_decompressor, DecompressorDeleter> decompressor;
  if (!decompressor) decompressor.reset(libdeflate_alloc_decompressor());
  if (!decompressor) throw std::bad_alloc();
  return decompressor.get();
}

constexpr size_t kGzipMinMember = 18;  // 10-byte header, empty deflate stream, 8-byte trailer

std::string limit_message(size_t limit) {
  return "decompressed data exceeds " + std::to_string(limit) +
         " bytes (file_reader's max-block-bytes)";
}

// A buffer per thread for a round's intermediate bytes (compressor output,
// decompressed block), kept between rounds: a fresh one per round was
// allocated, zero-filled and page-faulted each time. One over `kKeptScratch`
// is released after use, so a rare huge block does not stay in memory.
constexpr size_t kKeptScratch = size_t{8} << 20;

class ScratchBuffer {
 public:
  // At least `size` bytes, contents unspecified.
  char* reserve(size_t size) {
    if (size > capacity_ || !data_) {
      data_.reset();  // the old one goes first: never both at once
      data_ = std::make_unique_for_overwrite<char[]>(std::max<size_t>(size, 1));
      capacity_ = std::max<size_t>(size, 1);
    }
    return data_.get();
  }
  void release() {
    data_.reset();
    capacity_ = 0;
  }
  // After each use: a buffer larger than what is kept goes back.
  void done() {
    if (capacity_ > kKeptScratch) release();
  }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
};

}  // namespace

std::string gzip_compress(std::string_view data, int level) {
  libdeflate_compressor* compressor = thread_compressor(level);
  thread_local ScratchBuffer scratch;
  size_t bound = libdeflate_gzip_compress_bound(compressor, data.size());
  char* out = scratch.reserve(bound);
  size_t produced = libdeflate_gzip_compress(compressor, data.data(), data.size(), out, bound);
  std::string result(out, produced);
  scratch.done();
  if (produced == 0) throw std::runtime_error("libdeflate: gzip compression failed");
  return result;
}

namespace {

// The exact decompressed size of every member together, by streaming through a
// small buffer with zlib; throws once it passes `limit`. Costs a decompression
// pass without keeping the output, so only files whose trailer is not the whole
// story (several members, or a wrong ISIZE) pay for it.
size_t streamed_size(std::string_view data, size_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw std::bad_alloc();
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  char scratch[1 << 16];
  size_t total = 0;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(scratch);
    zs.avail_out = sizeof(scratch);
    int rc = inflate(&zs, Z_NO_FLUSH);
    total += sizeof(scratch) - zs.avail_out;
    if (total > limit) throw BlockDecodeError(limit_message(limit));
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) return total;
      inflateReset(&zs);  // another member follows
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_out != 0) throw BlockDecodeError("truncated gzip data");
    if (rc == Z_BUF_ERROR) continue;
    throw BlockDecodeError(std::string("corrupt gzip data: ") + (zs.msg ? zs.msg : "error"));
  }
}

}  // namespace

namespace {

// Decompresses every member of `data` into `scratch`; the view lasts until the
// scratch is used again.
std::string_view gunzip_into(std::string_view data, size_t limit, ScratchBuffer& scratch) {
  if (data.size() < kGzipMinMember) throw BlockDecodeError("truncated gzip data");
  if (data.size() > std::numeric_limits<uInt>::max())
    throw BlockDecodeError(limit_message(std::numeric_limits<uInt>::max()));
  // ISIZE, the last member's size mod 2^32, is only a hint: a liar or a member
  // over 4 GiB makes it small, extra members make the total larger. The common
  // case (one member, honest trailer) decompresses once into an exact buffer;
  // anything else is measured by streaming first (bounded by `limit`), so a
  // file can never make us allocate more than `limit` bytes for its output.
  const auto* tail = reinterpret_cast<const unsigned char*>(data.data() + data.size() - 4);
  size_t hint =
      size_t{tail[0]} | size_t{tail[1]} << 8 | size_t{tail[2]} << 16 | size_t{tail[3]} << 24;
  // A member decompresses to at least its ISIZE.
  if (hint > limit) throw BlockDecodeError(limit_message(limit));
  libdeflate_decompressor* decompressor = thread_decompressor();
  auto corrupt = [] { return BlockDecodeError("corrupt or truncated gzip data"); };
  char* out = scratch.reserve(hint);
  size_t member_in = 0, member_out = 0;
  auto rc = libdeflate_gzip_decompress_ex(decompressor, data.data(), data.size(), out, hint,
                                          &member_in, &member_out);
  if (rc == LIBDEFLATE_SUCCESS && member_in == data.size()) return {out, member_out};
  if (rc != LIBDEFLATE_SUCCESS && rc != LIBDEFLATE_INSUFFICIENT_SPACE) throw corrupt();
  scratch.release();  // before the exact buffer exists
  size_t total = streamed_size(data, limit);
  out = scratch.reserve(total);
  size_t consumed = 0, produced = 0;
  while (consumed < data.size()) {  // one member per pass, as Go's multistream reader
    rc = libdeflate_gzip_decompress_ex(decompressor, data.data() + consumed, data.size() - consumed,
                                       out + produced, total - produced, &member_in, &member_out);
    if (rc != LIBDEFLATE_SUCCESS) throw corrupt();
    consumed += member_in;
    produced += member_out;
  }
  return {out, produced};
}

}  // namespace

std::string gzip_decompress(std::string_view data, size_t limit) {
  ScratchBuffer buffer;
  return std::string(gunzip_into(data, limit, buffer));
}

BlockData decode_block_file(std::string bytes, const FilenamePattern& pattern,
                            size_t max_block_bytes, size_t max_block_memory) {
  thread_local ScratchBuffer scratch;
  struct Done {
    ScratchBuffer& buffer;
    ~Done() { buffer.done(); }
  } done{scratch};
  std::string_view content =
      pattern.gzip() ? gunzip_into(bytes, max_block_bytes, scratch) : std::string_view(bytes);
  BlockData block = pattern.encoding() == BlockFormat::json
                        ? decode_block_json(content, max_block_memory)
                        : BlockData::decode_msgpack(content, max_block_memory);
  block.set_encoded(pattern.format_tag(), std::move(bytes));
  return block;
}

std::string encode_block_file(const BlockData& block, const FilenamePattern& pattern,
                              BlockEncodeOptions options) {
  std::string bytes = pattern.encoding() == BlockFormat::json
                          ? encode_block_json(block, options)
                          : encode_block_msgpack(block, options);
  return pattern.gzip() ? gzip_compress(bytes) : bytes;
}

}  // namespace conduit::plugins
