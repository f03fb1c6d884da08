// The `postgresql` exporter (Go Conduit's postgresql exporter, Indexer-like
// schema) and the pure helpers it is built from, exposed for tests.
#pragma once

#include <msgpack.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/registry.hpp"

namespace conduit::plugins {

void register_postgresql(Registry& registry);

namespace pg {

// SHA-512/256 digest (32 bytes).
std::string sha512_256(std::string_view bytes);

// The Algorand transaction id of a SignedTxnInBlock `stib` of a block whose
// header is `header`: base32(SHA-512/256("TX" + canonical msgpack of the txn)),
// after restoring what the block leaves out ("gh" always, "gen" where "hgi").
std::string transaction_id(const msgpack::object& stib, const msgpack::object& header);

// Plain msgpack -> JSON: maps to objects (keys as strings), bin and ext as
// base64 strings, text as JSON strings (invalid UTF-8 and NUL replaced, since
// jsonb accepts neither). Appends to `out`.
void append_json(const msgpack::object& value, std::string& out);
// A JSON string of `text` (escaped; invalid UTF-8 and NUL replaced by U+FFFD).
void append_json_string(std::string_view text, std::string& out);
inline std::string to_json(const msgpack::object& value) {
  std::string out;
  append_json(value, out);
  return out;
}

// Indexer's typeenum: pay=1 keyreg=2 acfg=3 axfer=4 afrz=5 appl=6 stpf=7 hb=8, 0 unknown.
int type_enum(std::string_view type);

// --- Indexer's database: schema, JSON encodings and rows (postgresql_indexer.cpp) ---

// Indexer's schema at its latest migration (setup_postgres.sql), as conduit creates it.
extern const char* const kIndexerSchema;
// Indexer's migration count: metastate `migration` = {"next": kIndexerMigrations}.
constexpr int kIndexerMigrations = 20;

// Indexer's `encoding` package, from the block's msgpack.
std::string encode_block_header(const msgpack::object& header);
// A SignedTxnWithAD. `header` (root transactions) restores what the block
// strips ("gen" where "hgi", "gh"); `with_inner` false drops dt.itx (inner rows).
std::string encode_signed_txn_with_ad(const msgpack::object& stxn, const msgpack::object* header,
                                      bool with_inner);
// `account.account_data` from a state delta's account record (Go field names),
// without the balance and rewards fields the account table holds as columns.
std::string encode_trimmed_account_data(const msgpack::object& record);
std::string encode_asset_params(const msgpack::object& params);
std::string encode_app_params(const msgpack::object& params);
std::string encode_app_local_state(const msgpack::object& state);
// Indexer's util.PrintableUTF8OrEmpty test.
bool printable_utf8(std::string_view text);

// The state tables a round's delta changes, in StateChange::table.
enum class StateTable : uint8_t { account, asset, account_asset, app, account_app, app_box };
constexpr size_t kStateTables = 6;

// One row of a state table as one round's delta leaves it (SQL literals).
struct StateChange {
  StateTable table;
  std::string key;     // the key columns, comma-separated
  std::string values;  // the value columns (for a removal: what a closed row holds)
  bool removed = false;
  // account keytype / account_asset frozen, when this change sets it.
  std::optional<std::string> side;
};

// What one round writes: its block_header row, the metastate `accounts` value,
// the state rows its delta changes, and the COPY text of txn and txn_participation.
struct RoundRows {
  uint64_t round = 0;
  std::string header_tuple;
  std::string accounts_state;
  std::vector<StateChange> changes;
  std::string txn_copy;
  std::string participation_copy;
  size_t txns = 0;
  size_t participations = 0;
};

// RoundRows as bytes (for Exporter::prepare, which keeps them with the block)
// and back; parse_round_rows throws std::runtime_error on bytes it did not write.
std::string serialize_round_rows(const RoundRows& rows);
RoundRows parse_round_rows(std::string_view bytes);

// The rows of consecutive rounds committed in one transaction. Each state row
// the rounds change becomes one upsert that leaves it exactly as applying the
// rounds one by one would (created_at of the first change, closed_at of the
// last removal, keytype/frozen of the last change that sets them, the rest of
// the last change), so a unit costs one statement per table, not per round.
class UnitRows {
 public:
  UnitRows();
  void add(RoundRows&& rows);
  bool empty() const { return rounds_ == 0; }
  // block_header, metastate `accounts` and the state tables (one simple query).
  std::string statements() const;
  const std::string& txn_copy() const { return txn_copy_; }
  // The txn COPY text gathered so far, handed over (to a COPY already running).
  std::string take_txn_copy() { return std::exchange(txn_copy_, {}); }
  std::string take_participation_copy() { return std::exchange(participation_copy_, {}); }
  const std::string& participation_copy() const { return participation_copy_; }
  size_t row_count() const { return rows_; }

 private:
  struct Row {
    std::string key, values;
    uint64_t created_at = 0;
    std::optional<uint64_t> closed_at;
    bool removed = false;
    std::optional<std::string> side;
  };
  size_t rounds_ = 0;
  size_t rows_ = 0;
  std::string header_values_;
  std::string accounts_state_;
  std::vector<std::vector<Row>> tables_;
  std::vector<std::unordered_map<std::string, size_t>> index_;
  std::string txn_copy_;
  std::string participation_copy_;
};

// Throws std::runtime_error when the block or its delta cannot be written
// (missing delta past round 0, a KvMods key that is not a box, ...).
RoundRows round_rows(const msgpack::object& block_data, uint64_t round);
// The account rows of a genesis document's allocations (Indexer's LoadGenesis).
std::string genesis_statements(std::string_view genesis_json);
// A bytea literal, E'\\x...'::bytea (independent of standard_conforming_strings).
std::string bytea_literal(std::string_view bytes);

}  // namespace pg
}  // namespace conduit::plugins
