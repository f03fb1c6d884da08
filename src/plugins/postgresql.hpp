// The `postgresql` exporter (Go Conduit's postgresql exporter, Indexer-like
// schema) and the pure helpers it is built from, exposed for tests.
#pragma once

#include <msgpack.hpp>
#include <string>
#include <string_view>

#include "core/registry.hpp"

namespace conduit::plugins {

void register_postgresql(Registry& registry);

namespace pg {

std::string base64_encode(std::string_view bytes);
// RFC 4648 base32 without padding, as Algorand prints transaction ids.
std::string base32_encode_nopad(std::string_view bytes);
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
inline std::string to_json(const msgpack::object& value) {
  std::string out;
  append_json(value, out);
  return out;
}

// Indexer's typeenum: pay=1 keyreg=2 acfg=3 axfer=4 afrz=5 appl=6 stpf=7 hb=8, 0 unknown.
int type_enum(std::string_view type);

}  // namespace pg
}  // namespace conduit::plugins
