// DIR/metadata.json (CONTRACT section 7): the pipeline's checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

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

class Checkpoint {
 public:
  explicit Checkpoint(std::filesystem::path data_dir, bool durable = true);

  // The stored metadata, or nullopt on a first run. Throws CheckpointError for
  // a file that exists but cannot be read or parsed.
  std::optional<Metadata> load() const;
  // Atomically and durably replaces metadata.json.
  void store(const Metadata& metadata);

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  bool durable_;
};

}  // namespace conduit
