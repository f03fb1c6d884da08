// Block data as it moves through the pipeline: the decoded form of Go Conduit's
// BlockData (`block` header, `payset`, `delta`, `cert`). The msgpack tree is kept
// whole, unknown fields included, so an unmodified block re-encodes to the same
// bytes. msgpack itself stays out of this header (see block_msgpack.hpp) to keep
// the pipeline's translation units light.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace conduit {

class BlockDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A block whose decoded form would take more memory than allowed. Decoding
// costs far more than the encoded bytes for some inputs (a value of one msgpack
// byte, or two JSON characters, becomes a 24-byte msgpack::object), so bounding
// the bytes does not bound the memory: this does, before the tree is built.
class BlockTooLargeError : public BlockDecodeError {
 public:
  BlockTooLargeError(std::size_t estimate, std::size_t limit);
  std::size_t estimate() const { return estimate_; }
  std::size_t limit() const { return limit_; }

 private:
  std::size_t estimate_;
  std::size_t limit_;
};

// Default bound on one block's decoded size in memory (the importers'
// max-block-memory). Real blocks take about twice their msgpack size (see
// BlockData::memory_cost; 2.0-2.3 on mainnet-shaped blocks), so tens of MB at
// the very most; a value of one byte takes 24, which this stops.
inline constexpr std::size_t kDefaultMaxBlockMemory = std::size_t{256} << 20;

// What the importer learns about the chain at init (Go Conduit: sdk.Genesis).
struct Genesis {
  std::string network;  // genesis "network", e.g. "mainnet"
  std::string id;       // genesis "id", e.g. "v1.0"
  std::string hash;     // base64 of the genesis hash, as metadata.json stores it
  std::string json;     // the genesis document as the importer read it, if any
};

// A read-only view of one value inside a block, so that plugins can read
// fields without msgpack. Valid while the block lives and is not modified.
// Looking up what is not there gives an absent view, never an error: Go's
// structs read absent fields as zero values, and so can callers.
class FieldView {
 public:
  enum class Type {
    absent,
    nil,
    boolean,
    uint,
    negative_int,
    floating,
    string,
    bytes,
    array,
    map,
    other
  };

  FieldView() = default;
  Type type() const;
  bool present() const { return node_ != nullptr; }

  // Map member by string key.
  FieldView operator[](std::string_view key) const;
  // Dotted path of map members: "txn.apar.c".
  FieldView path(std::string_view dotted) const;
  // Elements of an array, or entries of a map; 0 for anything else.
  size_t size() const;
  FieldView at(size_t index) const;             // array element
  std::string_view key_at(size_t index) const;  // map key (string keys; "" otherwise)
  FieldView value_at(size_t index) const;       // map value

  std::optional<uint64_t> as_uint() const;
  std::optional<int64_t> as_int() const;  // negative ints, and uints that fit
  std::optional<bool> as_bool() const;
  std::optional<double> as_double() const;
  std::optional<std::string_view> as_string() const;  // msgpack str
  std::optional<std::string_view> as_bytes() const;   // msgpack bin (or str)

 private:
  friend class BlockData;
  explicit FieldView(const void* node) : node_(node) {}
  const void* node_ = nullptr;  // const msgpack::object*
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

  // Parses a msgpack-encoded BlockData; throws BlockDecodeError on malformed
  // input, BlockTooLargeError (before allocating the tree) when the decoded
  // block would take more than `max_memory` bytes (see memory_cost).
  static BlockData decode_msgpack(std::string_view bytes, std::size_t max_memory = SIZE_MAX);
  // A block with only a header round: {"block": {"rnd": round}} (round 0 omitted,
  // as Go's codec omits zero values). What the noop importer produces.
  static BlockData empty(uint64_t round);
  std::string encode_msgpack() const;
  BlockData clone() const;

  uint64_t round() const { return round_; }
  size_t txn_count() const { return txn_count_; }
  // About how many bytes the decoded tree takes: one msgpack::object per value
  // (24 bytes; a map entry is two) plus the contents of strings, byte strings
  // and extensions. What max-block-memory bounds.
  std::size_t memory_cost() const { return memory_cost_; }
  // About how many bytes the block takes (for memory budgets: the queues
  // between stages, group commit): its tree (memory_cost) plus the bytes kept
  // with it (encoded(): read, or prepared by an exporter, such as the
  // postgresql exporter's rows, several times the block's size).
  size_t size_hint() const { return memory_cost_ + (encoded_ ? encoded_->bytes.size() : 0); }

  // The whole BlockData, its header (`block`) and its payset entries
  // (SignedTxnInBlock: `txn`, `sig`, `hgi`, ApplyData such as `dt`).
  FieldView root() const;
  FieldView header() const { return root()["block"]; }
  FieldView payset_entry(size_t index) const { return root()["payset"].at(index); }
  // Keeps only the payset entries at `indices` (ascending, in range), dropping
  // the rest; the block is otherwise unchanged. Views into the payset are invalidated.
  void keep_payset_entries(const std::vector<size_t>& indices);

  // Mutable access drops the encoded bytes (see encoded()): the caller may change the tree.
  Tree& tree();
  const Tree& tree() const;
  // Re-reads the cached round, transaction count and memory cost after the
  // tree was modified.
  void refresh();

  // Pass-through: the bytes this block was read from (or already encoded to) in
  // `format` (a tag such as "msgp.gz" that both ends agree on), valid only while
  // the block is unmodified. Every mutation (tree(), keep_payset_entries,
  // refresh) drops them, so an exporter that finds bytes in its own format may
  // write them as they are instead of encoding the block again. Copies (clone)
  // share them.
  void set_encoded(std::string format, std::string bytes);
  // The bytes in `format`, or nullptr when the block holds none in that format.
  const std::string* encoded(std::string_view format) const;
  // Keeps the block as its msgpack encoding instead of its decoded tree (less
  // than half the memory: the bytes it was read from when unchanged, else a
  // fresh encoding); the tree is built again when something looks at it. For
  // blocks that wait long once an exporter has prepared what it needs. Its
  // size_hint stays that of the tree: budgets count what it takes decoded.
  void compact();
  // Lets go of the encoded bytes (once they are written), leaving the block as it is.
  void drop_encoded() { encoded_.reset(); }

 private:
  struct Encoded {
    std::string format;
    std::string bytes;
  };
  // Reads the round and transaction count (and drops the encoded bytes).
  void read_summary();
  // The tree, built from undecoded_ on first use (decode_msgpack defers it).
  Tree& built_tree() const;

  // Logically const: the tree and the bytes it is built from are one value.
  mutable std::unique_ptr<Tree> tree_;
  mutable std::string undecoded_;
  std::shared_ptr<const Encoded> encoded_;
  size_t memory_cost_ = 0;
  uint64_t round_ = 0;
  size_t txn_count_ = 0;
};

// What BlockData::decode_msgpack(bytes) would allocate for its tree (its
// memory_cost), found without allocating; throws BlockDecodeError when the
// bytes do not hold one well-formed msgpack value.
std::size_t msgpack_decoded_cost(std::string_view bytes);

// Transaction helpers over a payset entry or an inner transaction (both are
// SignedTxnWithAD): the transaction, its group id, its inner transactions.
inline FieldView txn_of(FieldView stxn) {
  return stxn["txn"];
}
inline std::optional<std::string_view> group_id(FieldView stxn) {
  return stxn.path("txn.grp").as_bytes();
}
inline FieldView inner_txns(FieldView stxn) {
  return stxn.path("dt.itx");
}

}  // namespace conduit
