#include "core/block_json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <unordered_map>
#include <vector>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/encoding.hpp"

namespace conduit {
namespace {

// ---------------------------------------------------------------------------
// Field schema: only what JSON cannot say by itself. Numbers, booleans, null,
// strings, arrays and maps need no entry; byte fields, address fields and maps
// whose keys are not strings do. Names are Go's codec tags (go-algorand-sdk v2
// types), so the same table serves the block, the delta and inner transactions.

enum class Kind : uint8_t { any, bytes, address, object, array, dict };
enum class KeyKind : uint8_t { string, uint, bytes, object };

struct Schema {
  Kind kind = Kind::any;
  std::unordered_map<std::string_view, const Schema*> fields;  // object
  const Schema* elem = nullptr;                                // array element, dict value
  KeyKind key = KeyKind::string;                               // dict key
  const Schema* key_schema = nullptr;                          // dict key when KeyKind::object
};

using FieldList = std::initializer_list<std::pair<std::string_view, const Schema*>>;

class Schemas {
 public:
  Schemas() {
    B = make(Kind::bytes);
    A = make(Kind::address);
    any = make(Kind::any);
    const Schema* asset_params = object({{"am", B}, {"m", A}, {"r", A}, {"f", A}, {"c", A}});
    const Schema* header = block_header();
    root_ = object({{"block", header},
                    {"payset", array(signed_transaction(asset_params))},
                    {"delta", ledger_delta(header, asset_params)},
                    {"cert", certificate()}});
  }

  const Schema* root() const { return root_; }

 private:
  const Schema* B = nullptr;    // bytes, base64 in JSON
  const Schema* A = nullptr;    // an address's 32 bytes
  const Schema* any = nullptr;  // JSON says what it is

  const Schema* transaction(const Schema* asset_params) {
    const Schema* merkle_proof = object({{"pth", array(B)}});
    const Schema* falcon =
        object({{"sig", B}, {"prf", merkle_proof}, {"vkey", object({{"k", B}})}});
    const Schema* reveal =
        object({{"s", object({{"s", falcon}})}, {"p", object({{"p", object({{"cmt", B}})}})}});
    const Schema* state_proof = object(
        {{"c", B}, {"S", merkle_proof}, {"P", merkle_proof}, {"r", dict(KeyKind::uint, reveal)}});
    const Schema* heartbeat =
        object({{"a", A},
                {"prf", object({{"s", B}, {"p", B}, {"p2", B}, {"p1s", B}, {"p2s", B}})},
                {"sd", B},
                {"vid", B}});
    const Schema* resource_ref = object({{"d", A}, {"b", object({{"n", B}})}});

    return object({
        {"snd", A},
        {"note", B},
        {"gh", B},
        {"lx", B},
        {"grp", B},
        {"rekey", A},
        {"votekey", B},
        {"selkey", B},
        {"sprfkey", B},
        {"rcv", A},
        {"close", A},
        {"apar", asset_params},
        {"asnd", A},
        {"arcv", A},
        {"aclose", A},
        {"fadd", A},
        {"apaa", array(B)},
        {"apat", array(A)},
        {"apbx", array(object({{"n", B}}))},
        {"apap", B},
        {"apsu", B},
        {"al", array(resource_ref)},
        {"sp", state_proof},
        {"spmsg", object({{"b", B}, {"v", B}})},
        {"hb", heartbeat},
    });
  }

  // SignedTxnWithAD, recursive through dt.itx (inner transactions).
  const Schema* signed_transaction(const Schema* asset_params) {
    const Schema* multisig = object({{"subsig", array(object({{"pk", B}, {"s", B}}))}});
    const Schema* pqsig = object({{"sch", B}, {"pk", B}, {"sig", B}});
    const Schema* lsig = object({{"l", B},
                                 {"sig", B},
                                 {"msig", multisig},
                                 {"lmsig", multisig},
                                 {"pqsig", pqsig},
                                 {"arg", array(B)}});
    const Schema* txn = transaction(asset_params);
    Schema* stxn = make(Kind::object);
    const Schema* state_delta = dict(KeyKind::string, any);
    const Schema* eval_delta = object({{"gd", state_delta},
                                       {"ld", dict(KeyKind::uint, state_delta)},
                                       {"sa", array(A)},
                                       {"itx", array(stxn)}});
    stxn->fields = {{"sig", B},   {"msig", multisig}, {"lsig", lsig},    {"pqsig", pqsig},
                    {"txn", txn}, {"sgnr", A},        {"dt", eval_delta}};
    return stxn;
  }

  const Schema* block_header() {
    return object({{"prev", B},
                   {"prev512", B},
                   {"seed", B},
                   {"txn", B},
                   {"txn256", B},
                   {"txn512", B},
                   {"gh", B},
                   {"prp", A},
                   {"fees", A},
                   {"rwd", A},
                   {"spt", dict(KeyKind::uint, object({{"v", B}}))},
                   {"partupdrmv", array(A)},
                   {"partupdabs", array(A)}});
  }

  const Schema* ledger_delta(const Schema* header, const Schema* asset_params) {
    // LedgerStateDelta: Go field names, no codec tags.
    const Schema* teal_kv = dict(KeyKind::string, any);
    return object({
        {"Accts",
         object({{"Accts", array(object({{"Addr", A},
                                         {"AuthAddr", A},
                                         {"VoteID", B},
                                         {"SelectionID", B},
                                         {"StateProofID", B}}))},
                 {"AppResources",
                  array(object({{"Addr", A},
                                {"Params", object({{"Params", object({{"approv", B},
                                                                      {"clearp", B},
                                                                      {"gs", teal_kv},
                                                                      {"ss", A}})}})},
                                {"State", object({{"LocalState", object({{"tkv", teal_kv}})}})}}))},
                 {"AssetResources",
                  array(object({{"Addr", A}, {"Params", object({{"Params", asset_params}})}}))}})},
        {"KvMods", dict(KeyKind::string, object({{"Data", B}, {"OldData", B}}))},
        {"Txids", dict(KeyKind::bytes, any)},
        {"Txleases", dict(KeyKind::object, any, object({{"Sender", A}, {"Lease", B}}))},
        {"Creatables", dict(KeyKind::uint, object({{"Creator", A}}))},
        {"Hdr", header},
    });
  }

  const Schema* certificate() {
    // The certificate is an untyped map in Go Conduit, so its addresses are
    // plain bytes (base64) there too.
    const Schema* proposal = object({{"dig", B}, {"encdig", B}, {"oprop", B}});
    const Schema* vote_sig =
        object({{"p", B}, {"p1s", B}, {"p2", B}, {"p2s", B}, {"ps", B}, {"s", B}});
    const Schema* cred = object({{"pf", B}});
    return object({{"prop", proposal},
                   {"vote", array(object({{"cred", cred}, {"sig", vote_sig}, {"snd", B}}))},
                   {"eqv", array(object({{"cred", cred},
                                         {"sigs", array(vote_sig)},
                                         {"snd", B},
                                         {"props", array(proposal)}}))}});
  }

  Schema* make(Kind kind) {
    storage_.emplace_back();
    storage_.back().kind = kind;
    return &storage_.back();
  }
  const Schema* object(FieldList fields) {
    Schema* s = make(Kind::object);
    for (const auto& [name, child] : fields) s->fields.emplace(name, child);
    return s;
  }
  const Schema* array(const Schema* elem) {
    Schema* s = make(Kind::array);
    s->elem = elem;
    return s;
  }
  const Schema* dict(KeyKind key, const Schema* value, const Schema* key_schema = nullptr) {
    Schema* s = make(Kind::dict);
    s->key = key;
    s->elem = value;
    s->key_schema = key_schema;
    return s;
  }

  std::deque<Schema> storage_;
  const Schema* root_ = nullptr;
};

const Schema* root_schema() {
  static const Schemas schemas;
  return schemas.root();
}

const Schema* field_schema(const Schema* s, std::string_view key) {
  if (!s) return nullptr;
  if (s->kind == Kind::object) {
    auto it = s->fields.find(key);
    return it == s->fields.end() ? nullptr : it->second;
  }
  if (s->kind == Kind::dict) return s->elem;
  return nullptr;
}

const Schema* elem_schema(const Schema* s) {
  return s && s->kind == Kind::array ? s->elem : nullptr;
}

constexpr int kMaxDepth = 256;

// ---------------------------------------------------------------------------
// Key order. go-codec's canonical mode, which Go Conduit writes with, sorts a
// map's entries by key: strings by their bytes, integers by value, any other
// key by its encoding (`encoded`: JSON text for JSON, bytes for msgpack).
// Returns the entries' order, or nothing when they are in order already (the
// common case: Go's msgpack sorts strings and integers the same way).

struct KeyRank {
  int group = 0;  // negative integers, non-negative integers, booleans, the rest
  int64_t number = 0;
  uint64_t unumber = 0;
  std::string text;
  bool operator<(const KeyRank& b) const {
    if (group != b.group) return group < b.group;
    if (number != b.number) return number < b.number;
    if (unumber != b.unumber) return unumber < b.unumber;
    return text < b.text;
  }
};

// A non-negative integer as JSON writes it (no sign, no leading zero), as
// a map key with integer keys reads back.
bool decimal_digits(std::string_view text, uint64_t& value) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// `integers_by_value`: integer and boolean keys rank by value (a map whose
// keys stay integers when read back); otherwise every key ranks by its text,
// as it reads back (a string).
template <class Encoded>
std::vector<uint32_t> canonical_key_order(const msgpack::object_kv* kv, uint32_t size,
                                          Encoded encoded, bool integers_by_value = true) {
  auto str = [](const msgpack::object& k) {
    return std::string_view(k.via.str.ptr, k.via.str.size);
  };
  bool sorted_strings = true;
  for (uint32_t i = 0; i < size && sorted_strings; ++i)
    sorted_strings =
        kv[i].key.type == msgpack::type::STR && (i == 0 || str(kv[i - 1].key) < str(kv[i].key));
  if (sorted_strings) return {};
  std::vector<KeyRank> ranks(size);
  for (uint32_t i = 0; i < size; ++i) {
    const msgpack::object& k = kv[i].key;
    KeyRank& rank = ranks[i];
    uint64_t digits_value = 0;
    if (!integers_by_value) {
      rank.group = 3;
      rank.text = k.type == msgpack::type::STR ? std::string(str(k)) : encoded(k);
    } else if (k.type == msgpack::type::STR && decimal_digits(str(k), digits_value)) {
      rank.group = 1;  // read back as the integer it spells
      rank.unumber = digits_value;
    } else if (k.type == msgpack::type::NEGATIVE_INTEGER) {
      rank.number = k.via.i64;
    } else if (k.type == msgpack::type::POSITIVE_INTEGER) {
      rank.group = 1;
      rank.unumber = k.via.u64;
    } else if (k.type == msgpack::type::BOOLEAN) {
      rank.group = 2;
      rank.unumber = k.via.boolean ? 1 : 0;
    } else {
      rank.group = 3;
      rank.text = k.type == msgpack::type::STR ? std::string(str(k)) : encoded(k);
    }
  }
  std::vector<uint32_t> order(size);
  for (uint32_t i = 0; i < size; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return ranks[a] < ranks[b]; });
  return order;
}

// ---------------------------------------------------------------------------
// Writer

class JsonWriter {
 public:
  JsonWriter(std::string& out, bool indent, const BlockEncodeOptions& options)
      : out_(out), indent_(indent), options_(options) {}

  void value(const msgpack::object& o, const Schema* s) {
    switch (o.type) {
      case msgpack::type::NIL:
        out_ += "null";
        return;
      case msgpack::type::BOOLEAN:
        out_ += o.via.boolean ? "true" : "false";
        return;
      case msgpack::type::POSITIVE_INTEGER:
        number(o.via.u64);
        return;
      case msgpack::type::NEGATIVE_INTEGER:
        number(o.via.i64);
        return;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: {
        if (!std::isfinite(o.via.f64))
          throw BlockEncodeError("a non-finite float has no JSON form");
        char buf[64];
        auto end = std::to_chars(buf, buf + sizeof(buf), o.via.f64).ptr;
        out_.append(buf, end);
        // Keep it a float when read back (Algorand data has no floats; unknown
        // fields should still survive the round trip with their type).
        if (std::string_view(buf, static_cast<size_t>(end - buf)).find_first_of(".e") ==
            std::string_view::npos)
          out_ += ".0";
        return;
      }
      case msgpack::type::STR:
        quote({o.via.str.ptr, o.via.str.size});
        return;
      case msgpack::type::BIN: {
        std::string_view bytes(o.via.bin.ptr, o.via.bin.size);
        out_ += '"';
        if (options_.addresses == AddressForm::base32 && s && s->kind == Kind::address &&
            bytes.size() == 32)
          out_ += algorand::encode_address(bytes);
        else
          out_ += encoding::base64_encode(bytes);
        out_ += '"';
        return;
      }
      case msgpack::type::ARRAY: {
        if (o.via.array.size == 0) {
          out_ += "[]";
          return;
        }
        enter('[');
        const Schema* elem = elem_schema(s);
        for (uint32_t i = 0; i < o.via.array.size; ++i) {
          if (i) out_ += ',';
          newline();
          value(o.via.array.ptr[i], elem);
        }
        leave(']');
        return;
      }
      case msgpack::type::MAP:
        map(o, s, {});
        return;
      default:
        throw BlockEncodeError("msgpack extension types have no JSON form");
    }
  }

  void map(const msgpack::object& o, const Schema* s, std::string_view skip_key) {
    uint32_t shown = 0;
    for (uint32_t i = 0; i < o.via.map.size; ++i)
      if (!is_key(o.via.map.ptr[i].key, skip_key)) ++shown;
    if (shown == 0) {
      out_ += "{}";
      return;
    }
    enter('{');
    bool first = true;
    std::vector<uint32_t> order = go_key_order(o, s);
    for (uint32_t n = 0; n < o.via.map.size; ++n) {
      const auto& kv = o.via.map.ptr[order.empty() ? n : order[n]];
      if (is_key(kv.key, skip_key)) continue;
      if (!first) out_ += ',';
      first = false;
      newline();
      const Schema* child = nullptr;
      key(kv.key, s);
      if (kv.key.type == msgpack::type::STR)
        child = field_schema(s, {kv.key.via.str.ptr, kv.key.via.str.size});
      else
        child = field_schema(s, {});
      out_ += indent_ ? ": " : ":";
      value(kv.val, child);
    }
    leave('}');
  }

 private:
  // Go's JSON order (go-codec's canonical kMapCanonical): a key that is not
  // a string or an integer (byte arrays such as Txids, struct keys such as
  // Txleases) by its encoded JSON text -- for base64 the text's order, not the
  // bytes'.
  std::vector<uint32_t> go_key_order(const msgpack::object& o, const Schema* s) {
    // Only a dict with integer keys reads its keys back as integers; in any
    // other map a key that is not a string is written, and read back, as text.
    bool integer_keys = s && s->kind == Kind::dict && s->key == KeyKind::uint;
    return canonical_key_order(
        o.via.map.ptr, o.via.map.size,
        [&](const msgpack::object& k) {
          std::string text;
          if (k.type == msgpack::type::BIN)
            return encoding::base64_encode({k.via.bin.ptr, k.via.bin.size});
          JsonWriter compact(text, false, options_);
          compact.depth_ = depth_;
          compact.value(k, s && s->kind == Kind::dict ? s->key_schema : nullptr);
          return text;
        },
        integer_keys);
  }

  static bool is_key(const msgpack::object& key, std::string_view name) {
    return !name.empty() && key.type == msgpack::type::STR &&
           std::string_view(key.via.str.ptr, key.via.str.size) == name;
  }

  void key(const msgpack::object& k, const Schema* s) {
    switch (k.type) {
      case msgpack::type::STR:
        quote({k.via.str.ptr, k.via.str.size});
        return;
      case msgpack::type::POSITIVE_INTEGER:
        out_ += '"';
        number(k.via.u64);
        out_ += '"';
        return;
      case msgpack::type::NEGATIVE_INTEGER:
        out_ += '"';
        number(k.via.i64);
        out_ += '"';
        return;
      case msgpack::type::BIN:
        out_ += '"';
        out_ += encoding::base64_encode({k.via.bin.ptr, k.via.bin.size});
        out_ += '"';
        return;
      case msgpack::type::BOOLEAN:
        out_ += k.via.boolean ? "\"true\"" : "\"false\"";
        return;
      case msgpack::type::MAP:
      case msgpack::type::ARRAY: {
        // A struct key (Txleases): its compact JSON, as a string.
        std::string inner;
        JsonWriter compact(inner, false, options_);
        compact.depth_ = depth_;
        compact.value(k, s && s->kind == Kind::dict ? s->key_schema : nullptr);
        quote(inner);
        return;
      }
      default:
        throw BlockEncodeError("a map key of this msgpack type has no JSON form");
    }
  }

  template <class T>
  void number(T v) {
    char buf[32];
    auto end = std::to_chars(buf, buf + sizeof(buf), v).ptr;
    out_.append(buf, end);
  }

  void enter(char open) {
    // Looser than the readers' limits, so that whatever they accept can be written.
    if (++depth_ > 2 * kMaxDepth + 16) throw BlockEncodeError("nesting too deep");
    out_ += open;
  }
  void leave(char close) {
    --depth_;
    newline();
    out_ += close;
  }
  void newline() {
    if (!indent_) return;
    out_ += '\n';
    out_.append(static_cast<size_t>(depth_) * 2, ' ');
  }

  // go-codec's quoting (HTMLCharsAsIs), except for bytes that are not UTF-8
  // when they are kept as escaped low surrogates.
  void quote(std::string_view s) {
    encoding::append_quoted(out_, s,
                            {.invalid = options_.invalid_utf8 == Utf8Mode::replace
                                            ? encoding::Quoting::Invalid::escape_replacement
                                            : encoding::Quoting::Invalid::escape_low_surrogate});
  }

  std::string& out_;
  bool indent_;
  const BlockEncodeOptions& options_;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------
// Reader: builds the msgpack tree directly in the block's zone. Hand-written
// rather than nlohmann::json because it must keep key order, read the
// surrogate escapes above back to bytes, and type each value by the schema.

// What the tree built so far takes, counted as BlockData::memory_cost counts
// it, as it is built: a huge array is refused at the limit, not after.
struct MemoryBudget {
  std::size_t used = 0;
  std::size_t limit = SIZE_MAX;
  void charge(std::size_t bytes) {
    used += bytes;
    if (used > limit) throw BlockTooLargeError(used, limit);
  }
  // Room for `bytes` more held only while parsing (a container's elements
  // before they move to the zone), on top of the tree.
  void check_transient(std::size_t bytes) const {
    if (bytes > limit - std::min(used, limit)) throw BlockTooLargeError(used + bytes, limit);
  }
};

class JsonReader {
 public:
  JsonReader(std::string_view in, msgpack::zone& zone, MemoryBudget& budget)
      : in_(in), zone_(zone), budget_(budget) {}

  msgpack::object document(const Schema* s) {
    msgpack::object o = value(s);
    skip_ws();
    if (pos_ != in_.size()) fail("trailing characters after the JSON value");
    return o;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw BlockDecodeError("JSON at byte " + std::to_string(pos_) + ": " + what);
  }

  void skip_ws() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\r' || in_[pos_] == '\t'))
      ++pos_;
  }

  char peek() {
    skip_ws();
    if (pos_ >= in_.size()) fail("unexpected end of input");
    return in_[pos_];
  }

  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) fail("invalid literal");
    pos_ += word.size();
  }

  msgpack::object value(const Schema* s) {
    budget_.charge(sizeof(msgpack::object));
    msgpack::object o;
    char c = peek();
    switch (c) {
      case '{':
        return object(s);
      case '[':
        return array(s);
      case '"': {
        std::string text = string();
        return typed_string(text, s);
      }
      case 't':
        literal("true");
        o.type = msgpack::type::BOOLEAN;
        o.via.boolean = true;
        return o;
      case 'f':
        literal("false");
        o.type = msgpack::type::BOOLEAN;
        o.via.boolean = false;
        return o;
      case 'n':
        literal("null");
        o.type = msgpack::type::NIL;
        return o;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        fail(std::string("unexpected character '") + c + "'");
    }
  }

  msgpack::object object(const Schema* s) {
    if (++depth_ > kMaxDepth) fail("nesting too deep");
    expect('{');
    std::vector<msgpack::object_kv> entries;
    if (peek() == '}') {
      ++pos_;
    } else {
      for (;;) {
        if (peek() != '"') fail("expected a string key");
        std::string key_text = string();
        budget_.charge(sizeof(msgpack::object));
        msgpack::object_kv kv;
        kv.key = typed_key(key_text, s);
        expect(':');
        kv.val = value(field_schema(s, key_text));
        grow(entries);
        entries.push_back(kv);
        char c = peek();
        ++pos_;
        if (c == '}') break;
        if (c != ',') fail("expected ',' or '}'");
      }
    }
    --depth_;
    canonical_msgpack_order(entries);
    msgpack::object o;
    o.type = msgpack::type::MAP;
    o.via.map.size = static_cast<uint32_t>(entries.size());
    o.via.map.ptr = copy(entries);
    return o;
  }

  // Go reads an object into a struct or a map and writes msgpack in go-codec's
  // canonical order, keys that are not strings or integers by their msgpack
  // encoding: Go's JSON (byte keys in the order of their base64) so reads back
  // to Go's msgpack, and any JSON to what it reads back to once written.
  static void canonical_msgpack_order(std::vector<msgpack::object_kv>& entries) {
    auto order = canonical_key_order(entries.data(), static_cast<uint32_t>(entries.size()),
                                     [](const msgpack::object& k) {
                                       msgpack::sbuffer buffer;
                                       msgpack::pack(buffer, k);
                                       return std::string(buffer.data(), buffer.size());
                                     });
    if (order.empty()) return;
    std::vector<msgpack::object_kv> sorted;
    sorted.reserve(entries.size());
    for (uint32_t i : order) sorted.push_back(entries[i]);
    entries = std::move(sorted);
  }

  msgpack::object array(const Schema* s) {
    if (++depth_ > kMaxDepth) fail("nesting too deep");
    expect('[');
    std::vector<msgpack::object> items;
    const Schema* elem = elem_schema(s);
    if (peek() == ']') {
      ++pos_;
    } else {
      for (;;) {
        msgpack::object item = value(elem);
        grow(items);
        items.push_back(item);
        char c = peek();
        ++pos_;
        if (c == ']') break;
        if (c != ',') fail("expected ',' or ']'");
      }
    }
    --depth_;
    msgpack::object o;
    o.type = msgpack::type::ARRAY;
    o.via.array.size = static_cast<uint32_t>(items.size());
    o.via.array.ptr = copy(items);
    return o;
  }

  // Grows `items` as push_back would, once the budget has room for both the
  // old and the new buffer (the vector holds both while it moves).
  template <class T>
  void grow(std::vector<T>& items) {
    if (items.size() < items.capacity()) return;
    std::size_t next = std::max<std::size_t>(8, items.capacity() * 2);
    budget_.check_transient((next + items.capacity()) * sizeof(T));
    items.reserve(next);
  }

  template <class T>
  T* copy(const std::vector<T>& items) {
    if (items.empty()) return nullptr;
    void* p = zone_.allocate_align(sizeof(T) * items.size(), alignof(T));
    std::memcpy(p, items.data(), sizeof(T) * items.size());
    return static_cast<T*>(p);
  }

  msgpack::object raw(msgpack::type::object_type type, std::string_view bytes) {
    budget_.charge(bytes.size());
    msgpack::object o;
    o.type = type;
    char* p = bytes.empty() ? nullptr : static_cast<char*>(zone_.allocate_no_align(bytes.size()));
    if (p) std::memcpy(p, bytes.data(), bytes.size());
    if (type == msgpack::type::STR) {
      o.via.str.ptr = p;
      o.via.str.size = static_cast<uint32_t>(bytes.size());
    } else {
      o.via.bin.ptr = p;
      o.via.bin.size = static_cast<uint32_t>(bytes.size());
    }
    return o;
  }

  msgpack::object typed_string(const std::string& text, const Schema* s) {
    if (s && s->kind == Kind::bytes) {
      auto bytes = encoding::base64_decode(text);
      if (!bytes) fail("a byte field is not valid base64");
      return raw(msgpack::type::BIN, *bytes);
    }
    if (s && s->kind == Kind::address) {
      // Either form, as the sdk's Address.UnmarshalText: checksummed base32
      // first, then base64 of exactly 32 bytes.
      if (auto bytes = algorand::decode_address(text)) return raw(msgpack::type::BIN, *bytes);
      auto bytes = encoding::base64_decode(text);
      if (!bytes || bytes->size() != 32) fail("invalid address '" + text + "'");
      return raw(msgpack::type::BIN, *bytes);
    }
    return raw(msgpack::type::STR, text);
  }

  msgpack::object typed_key(const std::string& text, const Schema* s) {
    if (!s || s->kind != Kind::dict || s->key == KeyKind::string)
      return raw(msgpack::type::STR, text);
    switch (s->key) {
      case KeyKind::uint: {
        JsonReader inner(text, zone_, budget_);
        msgpack::object o = inner.number();
        if (inner.pos_ != text.size() || (o.type != msgpack::type::POSITIVE_INTEGER &&
                                          o.type != msgpack::type::NEGATIVE_INTEGER))
          fail("map key '" + text + "' is not an integer");
        return o;
      }
      case KeyKind::bytes: {
        auto bytes = encoding::base64_decode(text);
        if (!bytes) fail("map key is not valid base64");
        return raw(msgpack::type::BIN, *bytes);
      }
      case KeyKind::object: {
        JsonReader inner(text, zone_, budget_);
        inner.depth_ = depth_;
        return inner.document(s->key_schema);
      }
      default:
        return raw(msgpack::type::STR, text);
    }
  }

  msgpack::object number() {
    size_t start = pos_;
    bool negative = false;
    if (pos_ < in_.size() && in_[pos_] == '-') {
      negative = true;
      ++pos_;
    }
    size_t digits = pos_;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
    if (pos_ == digits) fail("invalid number");
    if (in_[digits] == '0' && pos_ - digits > 1) fail("leading zeros in a number");
    bool is_float = false;
    if (pos_ < in_.size() && in_[pos_] == '.') {
      is_float = true;
      size_t frac = ++pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      if (pos_ == frac) fail("invalid number");
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      is_float = true;
      ++pos_;
      if (pos_ < in_.size() && (in_[pos_] == '+' || in_[pos_] == '-')) ++pos_;
      size_t exp = pos_;
      while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
      if (pos_ == exp) fail("invalid number");
    }
    msgpack::object o;
    const char* first = in_.data() + start;
    const char* last = in_.data() + pos_;
    if (is_float) {
      double d = 0;
      auto [end, ec] = std::from_chars(first, last, d);
      if (ec != std::errc() || end != last) fail("invalid number");
      o.type = msgpack::type::FLOAT64;
      o.via.f64 = d;
    } else if (negative) {
      int64_t v = 0;
      auto [end, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || end != last) fail("integer out of range");
      if (v < 0) {
        o.type = msgpack::type::NEGATIVE_INTEGER;
        o.via.i64 = v;
      } else {
        o.type = msgpack::type::POSITIVE_INTEGER;
        o.via.u64 = 0;
      }
    } else {
      uint64_t v = 0;
      auto [end, ec] = std::from_chars(first, last, v);
      if (ec != std::errc() || end != last) fail("integer out of range");
      o.type = msgpack::type::POSITIVE_INTEGER;
      o.via.u64 = v;
    }
    return o;
  }

  unsigned hex4() {
    if (pos_ + 4 > in_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<unsigned>(c - 'A' + 10);
      else
        fail("invalid \\u escape");
    }
    return v;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      size_t run = pos_;
      while (pos_ < in_.size() && in_[pos_] != '"' && in_[pos_] != '\\' &&
             static_cast<unsigned char>(in_[pos_]) >= 0x20)
        ++pos_;
      out.append(in_.data() + run, pos_ - run);
      if (pos_ >= in_.size()) fail("unterminated string");
      char c = in_[pos_++];
      if (c == '"') return out;
      if (c != '\\') fail("control character in a string");
      if (pos_ >= in_.size()) fail("unterminated string");
      char e = in_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff && in_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            unsigned low = hex4();
            if (low >= 0xdc00 && low <= 0xdfff) {
              encoding::append_utf8(out, 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00));
              break;
            }
            pos_ = save;
          }
          if (cp >= 0xdc80 && cp <= 0xdcff) {
            out += static_cast<char>(cp - 0xdc00);  // an escaped non-UTF-8 byte
          } else if (cp >= 0xd800 && cp <= 0xdfff) {
            encoding::append_utf8(out, 0xfffd);  // any other lone surrogate, as Go reads it
          } else {
            encoding::append_utf8(out, cp);
          }
          break;
        }
        default:
          fail("invalid escape");
      }
    }
  }

  std::string_view in_;
  msgpack::zone& zone_;
  MemoryBudget& budget_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string encode_block_json(const BlockData& block, BlockEncodeOptions options) {
  std::string out;
  out.reserve(1 << 16);
  JsonWriter writer(out, true, options);
  writer.map(block.tree().root, root_schema(), options.drop_certificate ? "cert" : "");
  return out;
}

BlockData decode_block_json(std::string_view json, std::size_t max_memory) {
  BlockData block;
  MemoryBudget budget{.limit = max_memory};
  JsonReader reader(json, block.tree().zone, budget);
  msgpack::object root = reader.document(root_schema());
  if (root.type != msgpack::type::MAP) throw BlockDecodeError("a block must be a JSON object");
  block.tree().root = root;
  block.refresh();
  return block;
}

std::string encode_block_msgpack(const BlockData& block, BlockEncodeOptions options) {
  const auto& root = block.tree().root;
  const msgpack::object* cert = options.drop_certificate ? mp::find(root, "cert") : nullptr;
  if (!cert) return block.encode_msgpack();
  msgpack::sbuffer buffer;
  msgpack::packer packer(buffer);
  packer.pack_map(root.via.map.size - 1);
  for (uint32_t i = 0; i < root.via.map.size; ++i) {
    const auto& kv = root.via.map.ptr[i];
    if (&kv.val == cert) continue;
    packer.pack(kv.key);
    packer.pack(kv.val);
  }
  return std::string(buffer.data(), buffer.size());
}

}  // namespace conduit
