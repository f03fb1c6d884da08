// DIR/metadata.json (docs/contract.md section 7): the pipeline's checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace conduit {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Metadata {
  std::string genesis_hash;
  std::string network;
  uint64_t next_round = 0;
};

// metadata.json's text -> Metadata (the rules of Checkpoint::load, without the
// file). `where` prefixes messages; keys conduit does not know go to `unknown_keys`.
Metadata parse_metadata(std::string_view text, const std::string& where,
                        nlohmann::ordered_json* unknown_keys = nullptr);

class Checkpoint {
 public:
  explicit Checkpoint(std::filesystem::path data_dir, bool durable = true);

  // The stored metadata, or nullopt on a first run (no file, or a 0-byte one
  // as in Go Conduit). Throws CheckpointError for any other file that cannot be
  // read, is not JSON, or whose next-round is not an integer in [0, 2^64-1].
  std::optional<Metadata> load() const;
  // Atomically and durably replaces metadata.json, keeping the keys the last
  // load() found that conduit does not know (e.g. Go's telemetry-id).
  void store(const Metadata& metadata);
  // The last load() found a 0-byte file and treated it as absent (worth a warning).
  bool ignored_empty_file() const { return ignored_empty_file_; }

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool durable_;
  mutable nlohmann::ordered_json extra_;  // unknown keys from the last load()
  mutable bool ignored_empty_file_ = false;
};

}  // namespace conduit
