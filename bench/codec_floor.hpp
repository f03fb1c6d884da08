// Reference codecs for the benchmarks' floors: zlib and libdeflate used
// directly (gzip level 6), independent of what conduit's plugins use, so the
// same bench source measures any version of conduit.
#pragma once

#include <libdeflate.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace bench {

inline std::string zlib_gzip(const std::string& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

inline std::string zlib_gunzip(const std::string& gz) {
  z_stream zs{};
  inflateInit2(&zs, 16 + MAX_WBITS);
  std::string out(std::max<size_t>(gz.size() * 4, 4096), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  size_t produced = 0;
  for (;;) {
    if (produced == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out.size() - produced);
    int rc = inflate(&zs, Z_NO_FLUSH);
    produced = out.size() - zs.avail_out;
    if (rc != Z_OK) break;
  }
  inflateEnd(&zs);
  out.resize(produced);
  return out;
}

struct Libdeflate {
  libdeflate_compressor* compressor = libdeflate_alloc_compressor(6);
  libdeflate_decompressor* decompressor = libdeflate_alloc_decompressor();
  ~Libdeflate() {
    libdeflate_free_compressor(compressor);
    libdeflate_free_decompressor(decompressor);
  }
  std::string gunzip(const std::string& gz) {
    size_t size = gz.size() >= 4 ? (uint8_t(gz[gz.size() - 4]) | uint8_t(gz[gz.size() - 3]) << 8 |
                                    uint8_t(gz[gz.size() - 2]) << 16 |
                                    size_t(uint8_t(gz[gz.size() - 1])) << 24)
                                 : 0;
    std::string out(size, '\0');
    size_t actual = 0;
    libdeflate_gzip_decompress(decompressor, gz.data(), gz.size(), out.data(), out.size(), &actual);
    out.resize(actual);
    return out;
  }
  std::string gzip(const std::string& data) {
    std::string out(libdeflate_gzip_compress_bound(compressor, data.size()), '\0');
    out.resize(
        libdeflate_gzip_compress(compressor, data.data(), data.size(), out.data(), out.size()));
    return out;
  }
};

}  // namespace bench
