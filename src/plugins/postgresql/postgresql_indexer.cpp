// The Algorand Indexer's database as conduit writes it: the schema Indexer
// creates (idb/postgres/internal/schema/setup_postgres.sql at its latest
// migration), the JSON its `encoding` package stores, and the rows its writer
// derives from a block and its ledger state delta. Written from Indexer's
// sources as a specification; the code is conduit's own.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/encoding.hpp"
#include "plugins/postgresql/postgresql.hpp"

namespace conduit::plugins::pg {

const char* const kIndexerSchema = R"SQL(
CREATE TABLE IF NOT EXISTS block_header (
  round bigint PRIMARY KEY,
  realtime timestamp without time zone NOT NULL,
  rewardslevel bigint NOT NULL,
  header jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS block_header_time ON block_header (realtime);
CREATE TABLE IF NOT EXISTS txn (
  round bigint NOT NULL,
  intra integer NOT NULL,
  typeenum smallint NOT NULL,
  asset bigint NOT NULL,
  txid bytea,
  txn jsonb NOT NULL,
  extra jsonb NOT NULL,
  PRIMARY KEY (round, intra)
);
CREATE INDEX IF NOT EXISTS txn_by_tixid ON txn (txid);
CREATE TABLE IF NOT EXISTS txn_participation (
  addr bytea NOT NULL,
  round bigint NOT NULL,
  intra integer NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS txn_participation_i ON txn_participation (addr, round DESC, intra DESC);
CREATE TABLE IF NOT EXISTS account (
  addr bytea PRIMARY KEY,
  microalgos bigint NOT NULL,
  rewardsbase bigint NOT NULL,
  rewards_total bigint NOT NULL,
  deleted bool NOT NULL,
  created_at bigint NOT NULL,
  closed_at bigint,
  keytype varchar(8),
  account_data jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS account_asset (
  addr bytea NOT NULL,
  assetid bigint NOT NULL,
  amount numeric(20) NOT NULL,
  frozen boolean NOT NULL,
  deleted bool NOT NULL,
  created_at bigint NOT NULL,
  closed_at bigint,
  PRIMARY KEY (addr, assetid)
);
CREATE INDEX IF NOT EXISTS account_asset_by_addr_partial ON account_asset (addr) WHERE NOT deleted;
CREATE TABLE IF NOT EXISTS asset (
  index bigint PRIMARY KEY,
  creator_addr bytea NOT NULL,
  params jsonb NOT NULL,
  deleted bool NOT NULL,
  created_at bigint NOT NULL,
  closed_at bigint
);
CREATE INDEX IF NOT EXISTS asset_by_creator_addr_deleted ON asset (creator_addr, deleted);
CREATE TABLE IF NOT EXISTS metastate (
  k text PRIMARY KEY,
  v jsonb
);
CREATE TABLE IF NOT EXISTS app (
  index bigint PRIMARY KEY,
  creator bytea NOT NULL,
  params jsonb NOT NULL,
  deleted bool NOT NULL,
  created_at bigint NOT NULL,
  closed_at bigint
);
CREATE INDEX IF NOT EXISTS app_by_creator_deleted ON app (creator, deleted);
CREATE TABLE IF NOT EXISTS account_app (
  addr bytea,
  app bigint,
  localstate jsonb NOT NULL,
  deleted bool NOT NULL,
  created_at bigint NOT NULL,
  closed_at bigint,
  PRIMARY KEY (addr, app)
);
CREATE INDEX IF NOT EXISTS account_app_by_addr_partial ON account_app (addr) WHERE NOT deleted;
CREATE TABLE IF NOT EXISTS app_box (
  app bigint NOT NULL,
  name bytea NOT NULL,
  value bytea NOT NULL,
  PRIMARY KEY (app, name)
);
)SQL";

namespace {

using Obj = msgpack::object;

std::string_view key_text(const msgpack::object_kv& kv) {
  if (kv.key.type == msgpack::type::STR) return {kv.key.via.str.ptr, kv.key.via.str.size};
  if (kv.key.type == msgpack::type::BIN) return {kv.key.via.bin.ptr, kv.key.via.bin.size};
  return {};
}

// Bytes of a str or bin value (Go strings and byte slices alike).
std::string_view bytes_of(const Obj& v) {
  if (v.type == msgpack::type::STR) return {v.via.str.ptr, v.via.str.size};
  if (v.type == msgpack::type::BIN) return {v.via.bin.ptr, v.via.bin.size};
  return {};
}

const Obj* field(const Obj& map, std::string_view key) {
  return map.type == msgpack::type::MAP ? mp::find(map, key) : nullptr;
}

uint64_t uint_of(const Obj* v) {
  return v && v->type == msgpack::type::POSITIVE_INTEGER ? v->via.u64 : 0;
}
uint64_t uint_at(const Obj& map, std::string_view key) {
  return uint_of(field(map, key));
}
std::string_view bytes_at(const Obj& map, std::string_view key) {
  const Obj* v = field(map, key);
  return v ? bytes_of(*v) : std::string_view{};
}
bool all_zero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}
bool is_empty(const Obj& v) {
  switch (v.type) {
    case msgpack::type::NIL:
      return true;
    case msgpack::type::BOOLEAN:
      return !v.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return v.via.u64 == 0;
    case msgpack::type::NEGATIVE_INTEGER:
      return v.via.i64 == 0;
    case msgpack::type::STR:
      return v.via.str.size == 0;
    case msgpack::type::BIN:
      return all_zero(bytes_of(v));  // fixed-size byte arrays: empty when all zero
    case msgpack::type::ARRAY:
      return v.via.array.size == 0;
    case msgpack::type::MAP:
      for (uint32_t i = 0; i < v.via.map.size; ++i)
        if (!is_empty(v.via.map.ptr[i].val)) return false;
      return true;
    default:
      return false;
  }
}

void append_key(std::string_view key, std::string& out, bool& first) {
  if (!first) out += ',';
  first = false;
  append_json_string(key, out);
  out += ':';
}
void append_base64(std::string_view bytes, std::string& out) {
  out += '"';
  out += encoding::base64_encode(bytes);
  out += '"';
}

// How a map is encoded: Indexer's "override" types turn some Go strings into
// base64 and some addresses into their checksummed text.
enum class Kind {
  plain,
  header,
  stxn,
  stxn_no_inner,
  txn,
  eval_delta,
  eval_delta_no_inner,
  state_delta,   // map: key base64, value value_delta
  value_delta,   // "bs" base64
  asset_params,  // an/un/au printable or an64/un64/au64
  app_params,    // "gs" teal key-value
  local_state,   // "tkv" teal key-value
  teal_kv,       // map: key base64, value teal_value
  teal_value,    // "tb" base64
};

void encode(const Obj& v, Kind kind, std::string& out);

void encode_address_text(const Obj& v, std::string& out) {
  std::string_view b = bytes_of(v);
  if (b.size() == 32)
    append_json_string(algorand::encode_address(b), out);
  else
    append_json(v, out);
}

// A map whose keys are byte strings shown as base64 (Indexer's byteArray keys).
void encode_base64_keyed(const Obj& v, Kind value_kind, std::string& out) {
  if (v.type != msgpack::type::MAP) return append_json(v, out);
  out += '{';
  for (uint32_t i = 0; i < v.via.map.size; ++i) {
    if (i) out += ',';
    append_base64(key_text(v.via.map.ptr[i]), out);
    out += ':';
    encode(v.via.map.ptr[i].val, value_kind, out);
  }
  out += '}';
}

void encode_map(const Obj& v, Kind kind, std::string& out,
                const std::vector<std::pair<std::string_view, const Obj*>>& extra = {});

// Per kind, the keys Indexer encodes in its own way: each writes the field
// (or leaves it out) and returns true, or returns false for the plain encoding.
bool header_field(Kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if (key == "prp") {
    append_key(key, out, first);
    encode_address_text(val, out);
    return true;
  }
  if ((key == "partupdrmv" || key == "partupdabs") && val.type == msgpack::type::ARRAY) {
    append_key(key, out, first);
    out += '[';
    for (uint32_t k = 0; k < val.via.array.size; ++k) {
      if (k) out += ',';
      encode_address_text(val.via.array.ptr[k], out);
    }
    out += ']';
    return true;
  }
  return false;
}

bool stxn_field(Kind kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if (key == "hgi" || key == "hgh") return true;  // SignedTxnInBlock only
  if (key == "txn") {
    append_key(key, out, first);
    encode(val, Kind::txn, out);
    return true;
  }
  if (key == "dt") {
    // Inner rows leave out their own inner transactions; what remains may be
    // empty, and is then omitted as Go's omitempty would.
    bool no_inner = kind == Kind::stxn_no_inner;
    if (no_inner) {
      bool empty = true;
      for (uint32_t k = 0; val.type == msgpack::type::MAP && k < val.via.map.size; ++k)
        if (key_text(val.via.map.ptr[k]) != "itx" && !is_empty(val.via.map.ptr[k].val))
          empty = false;
      if (empty) return true;
    }
    append_key(key, out, first);
    encode_map(val, no_inner ? Kind::eval_delta_no_inner : Kind::eval_delta, out);
    return true;
  }
  return false;
}

bool txn_field(Kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if (key == "apar") {
    append_key(key, out, first);
    encode(val, Kind::asset_params, out);
    return true;
  }
  return false;
}

bool eval_delta_field(Kind kind, std::string_view key, const Obj& val, std::string& out,
                      bool& first) {
  if (key == "itx" && kind == Kind::eval_delta_no_inner) return true;
  if (key == "gd") {
    append_key(key, out, first);
    encode_base64_keyed(val, Kind::value_delta, out);
    return true;
  }
  if (key == "ld" && val.type == msgpack::type::MAP) {
    append_key(key, out, first);
    out += '{';
    for (uint32_t k = 0; k < val.via.map.size; ++k) {
      if (k) out += ',';
      std::string index;
      append_json(val.via.map.ptr[k].key, index);
      if (index.empty() || index.front() != '"') index = '"' + index + '"';
      out += index;
      out += ':';
      encode_base64_keyed(val.via.map.ptr[k].val, Kind::value_delta, out);
    }
    out += '}';
    return true;
  }
  if (key == "lg" && val.type == msgpack::type::ARRAY) {
    append_key(key, out, first);
    out += '[';
    for (uint32_t k = 0; k < val.via.array.size; ++k) {
      if (k) out += ',';
      append_base64(bytes_of(val.via.array.ptr[k]), out);
    }
    out += ']';
    return true;
  }
  if (key == "itx" && val.type == msgpack::type::ARRAY) {
    append_key(key, out, first);
    out += '[';
    for (uint32_t k = 0; k < val.via.array.size; ++k) {
      if (k) out += ',';
      encode(val.via.array.ptr[k], Kind::stxn, out);
    }
    out += ']';
    return true;
  }
  return false;
}

bool bytes_field(Kind kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if ((kind == Kind::value_delta && key == "bs") || (kind == Kind::teal_value && key == "tb")) {
    append_key(key, out, first);
    append_base64(bytes_of(val), out);
    return true;
  }
  return false;
}

bool asset_params_field(Kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if (key == "an" || key == "un" || key == "au") {
    std::string_view text = bytes_of(val);
    if (text.empty()) return true;
    if (printable_utf8(text)) {
      append_key(key, out, first);
      append_json_string(text, out);
    } else {
      std::string alt = std::string(key) + "64";
      append_key(alt, out, first);
      append_base64(text, out);
    }
    return true;
  }
  return false;
}

bool teal_kv_field(Kind kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  if ((kind == Kind::app_params && key == "gs") || (kind == Kind::local_state && key == "tkv")) {
    append_key(key, out, first);
    encode_base64_keyed(val, Kind::teal_value, out);
    return true;
  }
  return false;
}

bool special_field(Kind kind, std::string_view key, const Obj& val, std::string& out, bool& first) {
  switch (kind) {
    case Kind::header:
      return header_field(kind, key, val, out, first);
    case Kind::stxn:
    case Kind::stxn_no_inner:
      return stxn_field(kind, key, val, out, first);
    case Kind::txn:
      return txn_field(kind, key, val, out, first);
    case Kind::eval_delta:
    case Kind::eval_delta_no_inner:
      return eval_delta_field(kind, key, val, out, first);
    case Kind::value_delta:
    case Kind::teal_value:
      return bytes_field(kind, key, val, out, first);
    case Kind::asset_params:
      return asset_params_field(kind, key, val, out, first);
    case Kind::app_params:
    case Kind::local_state:
      return teal_kv_field(kind, key, val, out, first);
    default:
      return false;
  }
}

void encode_map(const Obj& v, Kind kind, std::string& out,
                const std::vector<std::pair<std::string_view, const Obj*>>& extra) {
  if (v.type != msgpack::type::MAP) return append_json(v, out);
  out += '{';
  bool first = true;
  for (const auto& [key, value] : extra) {
    append_key(key, out, first);
    append_json(*value, out);
  }
  for (uint32_t i = 0; i < v.via.map.size; ++i) {
    const auto& kv = v.via.map.ptr[i];
    std::string_view key = key_text(kv);
    const Obj& val = kv.val;
    if (special_field(kind, key, val, out, first)) continue;
    append_key(key, out, first);
    append_json(val, out);
  }
  out += '}';
}

void encode(const Obj& v, Kind kind, std::string& out) {
  if (kind == Kind::plain) return append_json(v, out);
  encode_map(v, kind, out);
}

}  // namespace

bool printable_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    char32_t cp = encoding::decode_utf8(text, i);
    // Go's unicode.IsPrint: no controls, no format characters, no space but ' '.
    if (cp == 0xFFFD || cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD ||
        (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F) ||
        (cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0x1680 || cp == 0xFEFF ||
        (cp >= 0xFFF9 && cp <= 0xFFFB) || (cp >= 0xE000 && cp <= 0xF8FF) || cp >= 0xF0000)
      return false;
  }
  return true;
}

std::string encode_block_header(const msgpack::object& header) {
  std::string out;
  encode_map(header, Kind::header, out);
  return out;
}

std::string encode_signed_txn_with_ad(const msgpack::object& stxn, const msgpack::object* header,
                                      bool with_inner) {
  std::string out;
  if (!header) {
    encode_map(stxn, with_inner ? Kind::stxn : Kind::stxn_no_inner, out);
    return out;
  }
  // A root transaction: the txn map gains the genesis fields the block strips.
  const Obj* txn = field(stxn, "txn");
  std::vector<std::pair<std::string_view, const Obj*>> extra;
  if (txn) {
    const Obj* hgi = field(stxn, "hgi");
    const Obj* gen = field(*header, "gen");
    if (hgi && hgi->type == msgpack::type::BOOLEAN && hgi->via.boolean && gen &&
        !field(*txn, "gen"))
      extra.emplace_back("gen", gen);
    const Obj* gh = field(*header, "gh");
    if (gh && !field(*txn, "gh")) extra.emplace_back("gh", gh);
  }
  out += '{';
  bool first = true;
  for (uint32_t i = 0; i < stxn.via.map.size; ++i) {
    const auto& kv = stxn.via.map.ptr[i];
    std::string_view key = key_text(kv);
    if (key == "hgi" || key == "hgh") continue;
    if (key == "txn") {
      append_key(key, out, first);
      encode_map(kv.val, Kind::txn, out, extra);
      continue;
    }
    // Everything else as an inner-aware SignedTxnWithAD member.
    Obj single;
    single.type = msgpack::type::MAP;
    single.via.map.size = 1;
    single.via.map.ptr = const_cast<msgpack::object_kv*>(&kv);
    std::string one;
    encode_map(single, with_inner ? Kind::stxn : Kind::stxn_no_inner, one);
    if (one.size() > 2) {
      if (!first) out += ',';
      first = false;
      out.append(one, 1, one.size() - 2);
    }
  }
  out += '}';
  return out;
}

std::string encode_trimmed_account_data(const msgpack::object& record) {
  // ledgercore.AccountData's Go field names -> Indexer's baseAccountData keys.
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"AuthAddr", "spend"},
      {"IncentiveEligible", "ie"},
      {"LastHeartbeat", "lhb"},
      {"LastProposed", "lpr"},
      {"SelectionID", "sel"},
      {"StateProofID", "stprf"},
      {"Status", "onl"},
      {"TotalAppLocalStates", "tapl"},
      {"TotalAppParams", "tapp"},
      {"TotalAppSchema", "tsch"},
      {"TotalAssetParams", "tasp"},
      {"TotalAssets", "tas"},
      {"TotalBoxBytes", "tbxb"},
      {"TotalBoxes", "tbx"},
      {"TotalExtraAppPages", "teap"},
      {"VoteFirstValid", "voteFst"},
      {"VoteID", "vote"},
      {"VoteKeyDilution", "voteKD"},
      {"VoteLastValid", "voteLst"},
  };
  std::string out = "{";
  bool first = true;
  for (const auto& [go, codec] : kNames) {
    const Obj* v = field(record, go);
    if (!v || is_empty(*v)) continue;
    append_key(codec, out, first);
    if (v->type == msgpack::type::MAP) {
      // StateSchema {nui, nbs}: zero members omitted too.
      out += '{';
      bool f = true;
      for (uint32_t i = 0; i < v->via.map.size; ++i) {
        if (is_empty(v->via.map.ptr[i].val)) continue;
        append_key(key_text(v->via.map.ptr[i]), out, f);
        append_json(v->via.map.ptr[i].val, out);
      }
      out += '}';
    } else {
      append_json(*v, out);
    }
  }
  out += '}';
  return out;
}

std::string encode_asset_params(const msgpack::object& params) {
  std::string out;
  encode_map(params, Kind::asset_params, out);
  return out;
}
std::string encode_app_params(const msgpack::object& params) {
  std::string out;
  encode_map(params, Kind::app_params, out);
  return out;
}
std::string encode_app_local_state(const msgpack::object& state) {
  std::string out;
  encode_map(state, Kind::local_state, out);
  return out;
}

std::string bytea_literal(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  // E'' strings read the same whatever standard_conforming_strings says.
  std::string out = "E'\\\\x";
  out.reserve(bytes.size() * 2 + 12);
  for (char c : bytes) {
    out += kHex[static_cast<uint8_t>(c) >> 4];
    out += kHex[static_cast<uint8_t>(c) & 15];
  }
  out += "'::bytea";
  return out;
}

namespace {

// A SQL string literal, E'' so that it reads the same whatever
// standard_conforming_strings says: quotes and backslashes doubled.
std::string text_literal(std::string_view text) {
  std::string out = "E'";
  for (char c : text) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  out += '\'';
  return out;
}

// COPY text format: bytea as \\x hex, text with backslash escapes.
void copy_bytea(std::string_view bytes, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\\\x";
  for (char c : bytes) {
    out += kHex[static_cast<uint8_t>(c) >> 4];
    out += kHex[static_cast<uint8_t>(c) & 15];
  }
}
void copy_text(std::string_view text, std::string& out) {
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
}

const std::string kZeroAddress(32, '\0');

std::string address_at(const Obj& map, std::string_view key) {
  std::string_view b = bytes_at(map, key);
  return b.size() == 32 ? std::string(b) : kZeroAddress;
}

// Every address a transaction names (Indexer's addTransactionParticipants).
void participants(const Obj& stxn, bool include_inner, std::vector<std::string>& out) {
  auto add = [&](std::string address) {
    if (std::find(out.begin(), out.end(), address) == out.end()) out.push_back(std::move(address));
  };
  const Obj* txn = field(stxn, "txn");
  if (txn) {
    add(address_at(*txn, "snd"));
    std::string_view type = bytes_at(*txn, "type");
    if (type == "pay") {
      add(address_at(*txn, "rcv"));
      if (!all_zero(bytes_at(*txn, "close"))) add(address_at(*txn, "close"));
    } else if (type == "axfer") {
      if (!all_zero(bytes_at(*txn, "asnd"))) add(address_at(*txn, "asnd"));
      add(address_at(*txn, "arcv"));
      if (!all_zero(bytes_at(*txn, "aclose"))) add(address_at(*txn, "aclose"));
    } else if (type == "afrz") {
      add(address_at(*txn, "fadd"));
    } else if (type == "appl") {
      if (const Obj* accounts = field(*txn, "apat");
          accounts && accounts->type == msgpack::type::ARRAY)
        for (uint32_t i = 0; i < accounts->via.array.size; ++i) {
          std::string_view a = bytes_of(accounts->via.array.ptr[i]);
          add(a.size() == 32 ? std::string(a) : kZeroAddress);
        }
    } else if (type == "hb") {
      if (const Obj* hb = field(*txn, "hb")) add(address_at(*hb, "a"));
    }
  }
  if (include_inner)
    if (const Obj* dt = field(stxn, "dt"))
      if (const Obj* itx = field(*dt, "itx"); itx && itx->type == msgpack::type::ARRAY)
        for (uint32_t i = 0; i < itx->via.array.size; ++i)
          participants(itx->via.array.ptr[i], true, out);
}

// Indexer's transactionAssetID; `fallback_id` for creations without apply data.
uint64_t asset_id(const Obj& stxn, uint64_t fallback_id) {
  const Obj* txn = field(stxn, "txn");
  if (!txn) return 0;
  std::string_view type = bytes_at(*txn, "type");
  uint64_t id = 0;
  if (type == "appl") {
    id = uint_at(*txn, "apid");
    if (!id) id = uint_at(stxn, "apid");
    if (!id) id = fallback_id;
  } else if (type == "acfg") {
    id = uint_at(*txn, "caid");
    if (!id) id = uint_at(stxn, "caid");
    if (!id) id = fallback_id;
  } else if (type == "axfer") {
    id = uint_at(*txn, "xaid");
  } else if (type == "afrz") {
    id = uint_at(*txn, "faid");
  }
  return id;
}

// Indexer's idb.SignatureType. Consensus v42's post-quantum accounts sign with
// `pqsig`, or delegate a logic signature with `lsig.pqsig`: their key type is
// "pqsig" (Indexer's account sig-type enum since v42).
std::optional<std::string> sig_type(const Obj& stxn) {
  auto present = [](const Obj* v) { return v && !is_empty(*v); };
  std::string_view sig = bytes_at(stxn, "sig");
  if (!sig.empty() && !all_zero(sig)) return "sig";
  if (present(field(stxn, "msig"))) return "msig";
  if (present(field(stxn, "pqsig"))) return "pqsig";
  if (const Obj* lsig = field(stxn, "lsig"); present(lsig)) {
    std::string_view lsig_sig = bytes_at(*lsig, "sig");
    if (!lsig_sig.empty() && !all_zero(lsig_sig)) return "sig";
    if (present(field(*lsig, "msig")) || present(field(*lsig, "lmsig"))) return "msig";
    if (present(field(*lsig, "pqsig"))) return "pqsig";
    return "lsig";
  }
  return std::nullopt;
}

struct RowWriter {
  uint64_t round;
  std::string round_text;
  RoundRows& rows;
  uint64_t intra = 0;

  void txn_row(uint64_t type, uint64_t asset, const std::string* txid, const std::string& json,
               const std::string& extra) {
    std::string& b = rows.txn_copy;
    b += round_text;
    b += '\t';
    b += std::to_string(intra);
    b += '\t';
    b += std::to_string(type);
    b += '\t';
    b += std::to_string(asset);
    b += '\t';
    if (txid)
      b += *txid;  // bytea escape format: base32 characters are themselves
    else
      b += "\\N";
    b += '\t';
    copy_text(json, b);
    b += '\t';
    copy_text(extra, b);
    b += '\n';
    ++rows.txns;
  }
  void participation_rows(const std::vector<std::string>& addresses) {
    for (const auto& a : addresses) {
      copy_bytea(a, rows.participation_copy);
      rows.participation_copy += '\t';
      rows.participation_copy += round_text;
      rows.participation_copy += '\t';
      rows.participation_copy += std::to_string(intra);
      rows.participation_copy += '\n';
      ++rows.participations;
    }
  }
  // Inner transactions, depth first (preorder), as Indexer numbers them.
  void inner(const Obj& stxn, uint64_t root_intra, const std::string& root_txid) {
    const Obj* dt = field(stxn, "dt");
    const Obj* itx = dt ? field(*dt, "itx") : nullptr;
    if (!itx || itx->type != msgpack::type::ARRAY) return;
    for (uint32_t i = 0; i < itx->via.array.size; ++i) {
      const Obj& child = itx->via.array.ptr[i];
      ++intra;
      const Obj* txn = field(child, "txn");
      std::string extra = "{";
      if (uint64_t aca = uint_at(child, "aca")) extra += "\"aca\":" + std::to_string(aca) + ",";
      extra += "\"root-intra\":\"" + std::to_string(root_intra) + "\",\"root-txid\":\"" +
               root_txid + "\"}";
      txn_row(txn ? type_enum(bytes_at(*txn, "type")) : 0, asset_id(child, 0), nullptr,
              encode_signed_txn_with_ad(child, nullptr, false), extra);
      std::vector<std::string> addresses;
      participants(child, false, addresses);
      participation_rows(addresses);
      inner(child, root_intra, root_txid);
    }
  }
};

void append_tuple(std::string& values, const std::vector<std::string>& fields) {
  values += values.empty() ? "(" : ",(";
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) values += ',';
    values += fields[i];
  }
  values += ')';
}

void statement(std::string& out, const std::string& head, const std::string& values,
               const std::string& tail) {
  if (values.empty()) return;
  out += head;
  out += values;
  out += tail;
  out += ";\n";
}

// The proposer payout as Indexer records it: a synthetic payment from the fee sink.
std::string payout_txn(const Obj& header, uint64_t round, std::string& json) {
  msgpack::sbuffer buffer(256);
  buffer.write("TX", 2);
  msgpack::packer<msgpack::sbuffer> p(buffer);
  std::string note = "ProposerPayout for Round " + std::to_string(round);
  std::string_view gen = bytes_at(header, "gen");
  std::string_view gh = bytes_at(header, "gh");
  std::string_view sink = bytes_at(header, "fees");
  std::string_view proposer = bytes_at(header, "prp");
  uint64_t amount = uint_at(header, "pp");
  auto bin = [&](std::string_view b) {
    p.pack_bin(static_cast<uint32_t>(b.size()));
    p.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
  };
  uint32_t n = 7 + (gen.empty() ? 0 : 1) + (gh.empty() ? 0 : 1);  // amt fv lv note rcv snd type
  p.pack_map(n);
  p.pack("amt");
  p.pack(amount);
  p.pack("fv");
  p.pack(round);
  if (!gen.empty()) {
    p.pack("gen");
    p.pack(std::string(gen));
  }
  if (!gh.empty()) {
    p.pack("gh");
    bin(gh);
  }
  p.pack("lv");
  p.pack(round);
  p.pack("note");
  bin(note);
  p.pack("rcv");
  bin(proposer);
  p.pack("snd");
  bin(sink);
  p.pack("type");
  p.pack("pay");
  std::string_view packed(buffer.data() + 2, buffer.size() - 2);
  msgpack::object_handle handle = msgpack::unpack(packed.data(), packed.size());
  json = "{\"txn\":";
  append_json(handle.get(), json);
  json += '}';
  return encoding::base32_encode(sha512_256({buffer.data(), buffer.size()}));
}

// The keytype each sender's last transaction of the round gives its account
// (nullopt: NULL), as Indexer records it.
using KeyTypes = std::vector<std::pair<std::string, std::optional<std::string>>>;

void add_change(RoundRows& rows, StateTable table, std::string key, std::string values,
                bool removed, std::optional<std::string> side = std::nullopt) {
  rows.changes.push_back({table, std::move(key), std::move(values), removed, std::move(side)});
}

// A resource's entry in the delta, {"Deleted": bool, inner: map}: true when it changes the
// resource, with `value` the new map, or nullptr for a removal.
bool resource_change(const Obj& record, const char* name, const char* inner, const Obj*& value) {
  const Obj* entry = field(record, name);
  if (!entry) return false;
  const Obj* deleted = field(*entry, "Deleted");
  const Obj* map = field(*entry, inner);
  value = nullptr;
  if (deleted && deleted->type == msgpack::type::BOOLEAN && deleted->via.boolean) return true;
  if (!map || map->type != msgpack::type::MAP) return false;
  value = map;
  return true;
}

// Transactions and participation (txn, txn_participation); returns the keytypes.
KeyTypes transaction_rows(const msgpack::object& block_data, const Obj* header, uint64_t round,
                          const std::string& round_text, const std::string& sink, RoundRows& rows) {
  RowWriter writer{round, round_text, rows};
  KeyTypes keytypes;
  const Obj* payset = field(block_data, "payset");
  uint32_t payset_size =
      payset && payset->type == msgpack::type::ARRAY ? payset->via.array.size : 0;
  uint64_t txn_counter = uint_at(*header, "tc");
  for (uint32_t i = 0; i < payset_size; ++i) {
    const Obj& stib = payset->via.array.ptr[i];
    const Obj* txn = field(stib, "txn");
    if (!txn) throw std::runtime_error("round " + round_text + ": a payset entry has no txn");
    std::string txid = transaction_id(stib, *header);
    uint64_t root_intra = writer.intra;
    std::string extra = "{}";
    if (uint64_t aca = uint_at(stib, "aca")) extra = "{\"aca\":" + std::to_string(aca) + "}";
    // Before apply data carried created ids (pre-v30), Indexer derives them from the counter.
    uint64_t fallback = txn_counter - payset_size + writer.intra + 1;
    writer.txn_row(type_enum(bytes_at(*txn, "type")), asset_id(stib, fallback), &txid,
                   encode_signed_txn_with_ad(stib, header, true), extra);
    std::vector<std::string> addresses;
    participants(stib, true, addresses);
    writer.participation_rows(addresses);
    writer.inner(stib, root_intra, txid);
    ++writer.intra;

    std::string sender = address_at(*txn, "snd");
    bool rekey = !all_zero(bytes_at(*txn, "rekey"));
    std::optional<std::string> type;
    if (!rekey && bytes_at(*txn, "type") != "stpf") type = sig_type(stib);
    if (!rekey && bytes_at(*txn, "type") != "stpf" && !type) continue;  // unknown: unchanged
    keytypes.emplace_back(std::move(sender), std::move(type));
  }
  if (uint64_t payout = uint_at(*header, "pp"); payout > 0) {
    std::string json;
    std::string txid = payout_txn(*header, round, json);
    writer.txn_row(1, 0, &txid, json, "{}");
    writer.participation_rows({sink, address_at(*header, "prp")});
  }

  return keytypes;
}

// Accounts (account).
void account_rows(const Obj* accts, const KeyTypes& keytypes, RoundRows& rows) {
  const Obj* records = accts ? field(*accts, "Accts") : nullptr;
  for (uint32_t i = 0;
       records && records->type == msgpack::type::ARRAY && i < records->via.array.size; ++i) {
    const Obj& record = records->via.array.ptr[i];
    std::string addr = address_at(record, "Addr");
    const std::optional<std::string>* keytype = nullptr;
    for (auto it = keytypes.rbegin(); it != keytypes.rend(); ++it)
      if (it->first == addr) {
        keytype = &it->second;
        break;
      }
    std::optional<std::string> kt;
    if (keytype) kt = *keytype ? text_literal(**keytype) : "NULL::varchar";
    uint64_t algos = uint_at(record, "MicroAlgos");
    if (algos == 0)
      add_change(rows, StateTable::account, bytea_literal(addr), "0, 0, 0, 'null'::jsonb", true,
                 std::move(kt));
    else
      add_change(rows, StateTable::account, bytea_literal(addr),
                 std::to_string(algos) + ", " + std::to_string(uint_at(record, "RewardsBase")) +
                     ", " + std::to_string(uint_at(record, "RewardedMicroAlgos")) + ", " +
                     text_literal(encode_trimmed_account_data(record)) + "::jsonb",
                 false, std::move(kt));
  }
}

// Assets and holdings (asset, account_asset).
void asset_rows(const Obj* accts, RoundRows& rows) {
  const Obj* assets = accts ? field(*accts, "AssetResources") : nullptr;
  for (uint32_t i = 0; assets && assets->type == msgpack::type::ARRAY && i < assets->via.array.size;
       ++i) {
    const Obj& r = assets->via.array.ptr[i];
    std::string addr = bytea_literal(address_at(r, "Addr"));
    std::string id = std::to_string(uint_at(r, "Aidx"));
    const Obj* value;
    if (resource_change(r, "Params", "Params", value))
      add_change(
          rows, StateTable::asset, id,
          addr + ", " + (value ? text_literal(encode_asset_params(*value)) : "'null'") + "::jsonb",
          !value);
    // A removal leaves frozen as it was (Indexer's closing update does not set it).
    if (resource_change(r, "Holding", "Holding", value)) {
      if (!value) {
        add_change(rows, StateTable::account_asset, addr + ", " + id, "0", true);
      } else {
        const Obj* frozen = field(*value, "f");
        bool is_frozen = frozen && frozen->type == msgpack::type::BOOLEAN && frozen->via.boolean;
        add_change(rows, StateTable::account_asset, addr + ", " + id,
                   std::to_string(uint_at(*value, "a")), false, is_frozen ? "TRUE" : "FALSE");
      }
    }
  }
}

// Applications and local states (app, account_app).
void app_rows(const Obj* accts, RoundRows& rows) {
  const Obj* apps = accts ? field(*accts, "AppResources") : nullptr;
  for (uint32_t i = 0; apps && apps->type == msgpack::type::ARRAY && i < apps->via.array.size;
       ++i) {
    const Obj& r = apps->via.array.ptr[i];
    std::string addr = bytea_literal(address_at(r, "Addr"));
    std::string id = std::to_string(uint_at(r, "Aidx"));
    const Obj* value;
    if (resource_change(r, "Params", "Params", value))
      add_change(
          rows, StateTable::app, id,
          addr + ", " + (value ? text_literal(encode_app_params(*value)) : "'null'") + "::jsonb",
          !value);
    if (resource_change(r, "State", "LocalState", value))
      add_change(rows, StateTable::account_app, addr + ", " + id,
                 (value ? text_literal(encode_app_local_state(*value)) : "'null'") + "::jsonb",
                 !value);
  }
}

// Boxes (app_box).
void box_rows(const Obj* delta, const std::string& round_text, RoundRows& rows) {
  // Boxes (KvMods keys: "bx:" + the app id, 8 bytes big-endian, + the box name).
  const Obj* kv = field(*delta, "KvMods");
  for (uint32_t i = 0; kv && kv->type == msgpack::type::MAP && i < kv->via.map.size; ++i) {
    std::string_view key = key_text(kv->via.map.ptr[i]);
    if (key.size() < 11 || key.substr(0, 3) != "bx:")
      throw std::runtime_error("round " + round_text +
                               ": a KvMods key is not an application box (Indexer stores only "
                               "boxes)");
    uint64_t app = 0;
    for (size_t k = 3; k < 11; ++k) app = app << 8 | static_cast<uint8_t>(key[k]);
    std::string box = std::to_string(app) + ", " + bytea_literal(key.substr(11));
    const Obj* data = field(kv->via.map.ptr[i].val, "Data");
    if (data && (data->type == msgpack::type::BIN || data->type == msgpack::type::STR))
      add_change(rows, StateTable::app_box, std::move(box), bytea_literal(bytes_of(*data)), false);
    else
      add_change(rows, StateTable::app_box, std::move(box), "", true);
  }
}

}  // namespace

RoundRows round_rows(const msgpack::object& block_data, uint64_t round) {
  RoundRows rows;
  const Obj* header = field(block_data, "block");
  if (!header || header->type != msgpack::type::MAP)
    throw std::runtime_error("round " + std::to_string(round) + " has no block header");
  const std::string round_text = std::to_string(round);
  rows.round = round;
  rows.header_tuple = "(" + round_text + ", to_timestamp(" +
                      std::to_string(static_cast<int64_t>(uint_at(*header, "ts"))) +
                      ") AT TIME ZONE 'UTC', " + std::to_string(uint_at(*header, "earn")) + ", " +
                      text_literal(encode_block_header(*header)) + "::jsonb)";
  std::string sink = address_at(*header, "fees"), pool = address_at(*header, "rwd");
  rows.accounts_state = "{\"FeeSink\":\"" + encoding::base64_encode(sink) +
                        "\",\"RewardsPool\":\"" + encoding::base64_encode(pool) + "\"}";
  if (round == 0) return rows;  // Indexer's AddBlock0: header and special accounts only

  const Obj* delta = field(block_data, "delta");
  if (!delta || delta->type != msgpack::type::MAP)
    throw std::runtime_error(
        "round " + round_text +
        " has no ledger state delta, which the postgresql exporter needs for every round past "
        "0: use the algod importer with mode = \"follower\", or block files written with their "
        "deltas");

  KeyTypes keytypes = transaction_rows(block_data, header, round, round_text, sink, rows);
  const Obj* accts = field(*delta, "Accts");
  account_rows(accts, keytypes, rows);
  asset_rows(accts, rows);
  app_rows(accts, rows);
  box_rows(delta, round_text, rows);
  return rows;
}

namespace {

void put_number(std::string& out, uint64_t n) {
  char bytes[8];
  std::memcpy(bytes, &n, 8);
  out.append(bytes, 8);
}
void put_text(std::string& out, std::string_view text) {
  put_number(out, text.size());
  out += text;
}

struct RowsReader {
  std::string_view in;
  uint64_t number() {
    if (in.size() < 8) throw std::runtime_error("prepared rows: truncated");
    uint64_t n;
    std::memcpy(&n, in.data(), 8);
    in.remove_prefix(8);
    return n;
  }
  std::string text() {
    uint64_t n = number();
    if (in.size() < n) throw std::runtime_error("prepared rows: truncated");
    std::string out(in.substr(0, n));
    in.remove_prefix(n);
    return out;
  }
};

}  // namespace

std::string serialize_round_rows(const RoundRows& rows) {
  std::string out;
  out.reserve(rows.txn_copy.size() + rows.participation_copy.size() + rows.header_tuple.size() +
              64 * rows.changes.size() + 256);
  put_number(out, rows.round);
  put_text(out, rows.header_tuple);
  put_text(out, rows.accounts_state);
  put_text(out, rows.txn_copy);
  put_text(out, rows.participation_copy);
  put_number(out, rows.txns);
  put_number(out, rows.participations);
  put_number(out, rows.changes.size());
  for (const auto& change : rows.changes) {
    put_number(out, static_cast<uint64_t>(change.table) | (change.removed ? 0x100 : 0) |
                        (change.side ? 0x200 : 0));
    put_text(out, change.key);
    put_text(out, change.values);
    if (change.side) put_text(out, *change.side);
  }
  return out;
}

RoundRows parse_round_rows(std::string_view bytes) {
  RowsReader in{bytes};
  RoundRows rows;
  rows.round = in.number();
  rows.header_tuple = in.text();
  rows.accounts_state = in.text();
  rows.txn_copy = in.text();
  rows.participation_copy = in.text();
  rows.txns = in.number();
  rows.participations = in.number();
  uint64_t changes = in.number();
  if (changes > bytes.size()) throw std::runtime_error("prepared rows: bad change count");
  rows.changes.reserve(changes);
  for (uint64_t i = 0; i < changes; ++i) {
    uint64_t flags = in.number();
    if ((flags & 0xff) >= kStateTables) throw std::runtime_error("prepared rows: bad table");
    StateChange change{static_cast<StateTable>(flags & 0xff), in.text(), in.text(),
                       (flags & 0x100) != 0, std::nullopt};
    if (flags & 0x200) change.side = in.text();
    rows.changes.push_back(std::move(change));
  }
  if (!in.in.empty()) throw std::runtime_error("prepared rows: trailing bytes");
  return rows;
}

namespace {

// How a state table's collapsed rows are written (StateTable order; app_box apart).
struct StateShape {
  const char* table;
  const char* key_columns;
  const char* value_columns;
  const char* side_column;   // nullptr: none
  const char* side_default;  // a new row's side when no change set it
};
constexpr StateShape kStateShapes[] = {
    {"account", "addr", "microalgos, rewardsbase, rewards_total, account_data", "keytype", "NULL"},
    {"asset", "index", "creator_addr, params", nullptr, nullptr},
    {"account_asset", "addr, assetid", "amount", "frozen", "FALSE"},
    {"app", "index", "creator, params", nullptr, nullptr},
    {"account_app", "addr, app", "localstate", nullptr, nullptr},
};

// "a, b" -> "a = EXCLUDED.a, b = EXCLUDED.b"
std::string excluded_assignments(std::string_view columns) {
  std::string out;
  while (!columns.empty()) {
    size_t comma = columns.find(',');
    std::string_view column = columns.substr(0, comma);
    while (!column.empty() && column.front() == ' ') column.remove_prefix(1);
    if (!out.empty()) out += ", ";
    out += std::string(column) + " = EXCLUDED." + std::string(column);
    if (comma == std::string_view::npos) break;
    columns.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

UnitRows::UnitRows() : tables_(kStateTables), index_(kStateTables) {}

void UnitRows::add(RoundRows&& rows) {
  ++rounds_;
  rows_ += rows.txns + rows.participations + 1;
  if (!header_values_.empty()) header_values_ += ", ";
  header_values_ += rows.header_tuple;
  accounts_state_ = std::move(rows.accounts_state);
  for (auto& change : rows.changes) {
    const size_t t = static_cast<size_t>(change.table);
    auto [at, fresh] = index_[t].try_emplace(change.key, tables_[t].size());
    if (fresh) {
      tables_[t].push_back(Row{});
      tables_[t].back().key = std::move(change.key);
      tables_[t].back().created_at = rows.round;
      ++rows_;
    }
    Row& row = tables_[t][at->second];
    row.values = std::move(change.values);
    row.removed = change.removed;
    if (change.removed) row.closed_at = rows.round;
    if (change.side) row.side = std::move(change.side);
  }
  txn_copy_ += rows.txn_copy;
  participation_copy_ += rows.participation_copy;
}

std::string UnitRows::statements() const {
  std::string sql;
  if (!header_values_.empty())
    sql += "INSERT INTO block_header (round, realtime, rewardslevel, header) VALUES " +
           header_values_ + " ON CONFLICT DO NOTHING;\n";
  if (!accounts_state_.empty())
    sql += "INSERT INTO metastate (k, v) VALUES ('accounts', " + text_literal(accounts_state_) +
           ") ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;\n";
  for (size_t t = 0; t < std::size(kStateShapes); ++t) {
    const StateShape& shape = kStateShapes[t];
    // One statement per (closed in the unit, side set in the unit): the update
    // touches closed_at and the side column only when a change did.
    for (int variant = 0; variant < 4; ++variant) {
      const bool closed = variant & 1, side_set = variant & 2;
      if (side_set && !shape.side_column) continue;
      std::string values;
      for (const Row& row : tables_[t]) {
        if (row.closed_at.has_value() != closed || row.side.has_value() != side_set) continue;
        std::vector<std::string> fields{row.key, row.values, row.removed ? "TRUE" : "FALSE",
                                        std::to_string(row.created_at),
                                        closed ? std::to_string(*row.closed_at) : "NULL::bigint"};
        if (shape.side_column) fields.push_back(row.side ? *row.side : shape.side_default);
        append_tuple(values, fields);
      }
      statement(
          sql,
          std::string("INSERT INTO ") + shape.table + " (" + shape.key_columns + ", " +
              shape.value_columns + ", deleted, created_at, closed_at" +
              (shape.side_column ? std::string(", ") + shape.side_column : "") + ") VALUES ",
          values,
          std::string(" ON CONFLICT (") + shape.key_columns + ") DO UPDATE SET " +
              excluded_assignments(shape.value_columns) + ", deleted = EXCLUDED.deleted" +
              (closed ? ", closed_at = EXCLUDED.closed_at" : "") +
              (side_set ? std::string(", ") + shape.side_column + " = EXCLUDED." + shape.side_column
                        : ""));
    }
  }
  // Boxes: the last change of each wins (no created/closed columns).
  std::string box_up, box_del;
  for (const Row& row : tables_[static_cast<size_t>(StateTable::app_box)]) {
    if (row.removed)
      append_tuple(box_del, {row.key});
    else
      append_tuple(box_up, {row.key, row.values});
  }
  statement(sql, "INSERT INTO app_box (app, name, value) VALUES ", box_up,
            " ON CONFLICT (app, name) DO UPDATE SET value = EXCLUDED.value");
  statement(sql, "DELETE FROM app_box b USING (VALUES ", box_del,
            ") v (app, name) WHERE b.app = v.app AND b.name = v.name");
  return sql;
}

std::string genesis_statements(std::string_view genesis_json) {
  if (genesis_json.empty()) return {};
  auto doc = nlohmann::json::parse(genesis_json);
  std::string values;
  for (const auto& alloc : doc.value("alloc", nlohmann::json::array())) {
    auto addr = algorand::decode_address(alloc.value("addr", std::string()));
    if (!addr) throw std::runtime_error("genesis allocation with a bad address");
    const auto state = alloc.value("state", nlohmann::json::object());
    // Indexer's accountToAccountData: status and voting keys (not VoteFirstValid).
    nlohmann::json data = nlohmann::json::object();
    auto copy = [&](const char* key) {
      if (!state.contains(key)) return;
      const auto& v = state[key];
      if ((v.is_number() && v.get<double>() == 0) ||
          (v.is_string() && v.get<std::string>().empty()))
        return;
      if (v.is_string()) {
        auto raw = encoding::base64_decode(v.get<std::string>());
        if (raw && all_zero(*raw)) return;
      }
      data[key] = v;
    };
    for (const char* key : {"onl", "sel", "stprf", "vote", "voteKD", "voteLst"}) copy(key);
    append_tuple(values, {bytea_literal(*addr), std::to_string(state.value("algo", uint64_t{0})),
                          text_literal(data.dump()) + "::jsonb"});
  }
  std::string sql;
  statement(sql,
            "INSERT INTO account (addr, microalgos, account_data, rewardsbase, rewards_total, "
            "created_at, deleted) SELECT *, 0, 0, 0, FALSE FROM (VALUES ",
            values, ") v");
  return sql;
}

}  // namespace conduit::plugins::pg
