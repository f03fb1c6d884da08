// Block data as it moves through the pipeline: the decoded form of Go Conduit's
// BlockData (`block` header, `payset`, `delta`, `cert`). The msgpack tree is kept
// whole, unknown fields included, so an unmodified block re-encodes to the same
// bytes. msgpack itself stays out of this header (see block_msgpack.hpp) to keep
// the pipeline's translation units light.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace conduit {

class BlockDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the importer learns about the chain at init (Go Conduit: sdk.Genesis).
struct Genesis {
  std::string network;  // genesis "network", e.g. "mainnet"
  std::string id;       // genesis "id", e.g. "v1.0"
  std::string hash;     // base64 of the genesis hash, as metadata.json stores it
  std::string json;     // the genesis document as the importer read it, if any
};

class BlockData {
 public:
  struct Tree;  // the msgpack zone + root object; see block_msgpack.hpp

  BlockData();
  ~BlockData();
  BlockData(BlockData&&) noexcept;
  BlockData& operator=(BlockData&&) noexcept;
  // Copies are explicit (clone) because a block is large and shared by no one.
  BlockData(const BlockData&) = delete;
  BlockData& operator=(const BlockData&) = delete;

  // Parses a msgpack-encoded BlockData; throws BlockDecodeError on malformed input.
  static BlockData decode_msgpack(std::string_view bytes);
  std::string encode_msgpack() const;
  BlockData clone() const;

  uint64_t round() const { return round_; }
  size_t txn_count() const { return txn_count_; }

  Tree& tree() { return *tree_; }
  const Tree& tree() const { return *tree_; }
  // Re-reads the cached round and transaction count after the tree was modified.
  void refresh();

 private:
  std::unique_ptr<Tree> tree_;
  uint64_t round_ = 0;
  size_t txn_count_ = 0;
};

}  // namespace conduit
