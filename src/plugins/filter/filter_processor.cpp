// filter_processor, as Go Conduit's: `filters` is a list; each entry holds
// exactly one of any / all / none with sub-expressions {tag, expression-type,
// expression}; entries combine with AND, applied one after the other to the
// payset exactly as Go's Filter.SearchAndFilter (a match brings its contiguous
// group unless omit-group-transactions); search-inner also looks at inner
// transactions, recursively, and keeps the top-level transaction.
//
// Tags and value conversions follow Go Conduit's generated LookupFieldByTag:
// every value is a uint64 or a string (addresses as checksummed base32, byte
// fields as base64, booleans as "true"/"false"); an absent field reads as its
// zero value. Expression rules follow Go's MakeExpression: numbers take equal,
// not-equal, less-than(-equal), greater-than(-equal); strings take equal
// (exact) and regex (unanchored search). Regexes are RE2, the dialect of Go's
// regexp package ((?i), (?P<name>), \A, \z, \pL; no backreferences or
// lookaround), matched in linear time whatever the field holds.
#include "plugins/filter/filter_processor.hpp"

#include <re2/re2.h>

#include <cctype>
#include <charconv>
#include <functional>

#include "core/algorand.hpp"
#include "core/encoding.hpp"

namespace conduit::plugins {
namespace {

enum class TagKind { uint, string, address, bytes, bytes32, boolean };

struct TagInfo {
  std::string_view tag;
  TagKind kind;
};

// Go Conduit's Filter_tags.md (generated_signed_txn_map.go), by value type;
// tests/unit/filter_processor_test.cpp checks this table against that list.
// Signatures are not filterable there, the post-quantum ones (pqsig.*,
// lsig.pqsig.*) included: they are unknown tags.
constexpr TagInfo kTags[] = {
    {"aca", TagKind::uint},
    {"apid", TagKind::uint},
    {"ca", TagKind::uint},
    {"caid", TagKind::uint},
    {"lsig.lmsig.thr", TagKind::uint},
    {"lsig.lmsig.v", TagKind::uint},
    {"lsig.msig.thr", TagKind::uint},
    {"lsig.msig.v", TagKind::uint},
    {"msig.thr", TagKind::uint},
    {"msig.v", TagKind::uint},
    {"rc", TagKind::uint},
    {"rr", TagKind::uint},
    {"rs", TagKind::uint},
    {"sgnr", TagKind::address},
    {"txn.aamt", TagKind::uint},
    {"txn.aclose", TagKind::address},
    {"txn.afrz", TagKind::boolean},
    {"txn.amt", TagKind::uint},
    {"txn.apan", TagKind::uint},
    {"txn.apar.am", TagKind::bytes32},
    {"txn.apar.an", TagKind::string},
    {"txn.apar.au", TagKind::string},
    {"txn.apar.c", TagKind::address},
    {"txn.apar.dc", TagKind::uint},
    {"txn.apar.df", TagKind::boolean},
    {"txn.apar.f", TagKind::address},
    {"txn.apar.m", TagKind::address},
    {"txn.apar.r", TagKind::address},
    {"txn.apar.t", TagKind::uint},
    {"txn.apar.un", TagKind::string},
    {"txn.apep", TagKind::uint},
    {"txn.apgs.nbs", TagKind::uint},
    {"txn.apgs.nui", TagKind::uint},
    {"txn.apid", TagKind::uint},
    {"txn.apls.nbs", TagKind::uint},
    {"txn.apls.nui", TagKind::uint},
    {"txn.aprv", TagKind::uint},
    {"txn.arcv", TagKind::address},
    {"txn.asnd", TagKind::address},
    {"txn.caid", TagKind::uint},
    {"txn.close", TagKind::address},
    {"txn.fadd", TagKind::address},
    {"txn.faid", TagKind::uint},
    {"txn.fee", TagKind::uint},
    {"txn.fv", TagKind::uint},
    {"txn.gen", TagKind::string},
    {"txn.grp", TagKind::bytes32},
    {"txn.lv", TagKind::uint},
    {"txn.nonpart", TagKind::boolean},
    {"txn.note", TagKind::bytes},
    {"txn.rcv", TagKind::address},
    {"txn.rekey", TagKind::address},
    {"txn.snd", TagKind::address},
    {"txn.sp.P.td", TagKind::uint},
    {"txn.sp.S.td", TagKind::uint},
    {"txn.sp.v", TagKind::uint},
    {"txn.sp.w", TagKind::uint},
    {"txn.spmsg.P", TagKind::uint},
    {"txn.spmsg.f", TagKind::uint},
    {"txn.spmsg.l", TagKind::uint},
    {"txn.sptype", TagKind::uint},
    {"txn.type", TagKind::string},
    {"txn.votefst", TagKind::uint},
    {"txn.votekd", TagKind::uint},
    {"txn.votelst", TagKind::uint},
    {"txn.xaid", TagKind::uint},
};

// Go (1.22 on) also names groups as (?<name>...), which this RE2 spells
// (?P<name>...): rewritten outside character classes and escapes. (?<= and
// (?<! stay, and RE2 refuses them as Go does.
std::string go_named_groups(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      out += c;
      out += pattern[++i];
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[i++];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[i++];  // []...]
    } else if (pattern.substr(i, 3) == "(?<" && i + 3 < pattern.size() &&
               (std::isalpha(static_cast<unsigned char>(pattern[i + 3])) ||
                pattern[i + 3] == '_')) {
      out += "(?P<";
      i += 2;
      continue;
    }
    out += c;
  }
  return out;
}

const TagInfo* find_tag(std::string_view tag) {
  for (const auto& info : kTags)
    if (info.tag == tag) return &info;
  return nullptr;
}

enum class Op { equal, not_equal, regex, less, less_equal, greater, greater_equal };

std::optional<Op> parse_op(std::string_view text) {
  if (text == "equal") return Op::equal;
  if (text == "not-equal") return Op::not_equal;
  if (text == "regex") return Op::regex;
  if (text == "less-than") return Op::less;
  if (text == "less-than-equal") return Op::less_equal;
  if (text == "greater-than") return Op::greater;
  if (text == "greater-than-equal") return Op::greater_equal;
  return std::nullopt;
}

std::function<void(size_t)>& evaluation_hook() {
  static std::function<void(size_t)> hook;
  return hook;
}

// One process() call's walk over the expressions. A regex over a megabyte
// field takes milliseconds and a filter may hold thousands of them, so a `now`
// stop is honoured before every expression, not only between filters; the
// check is one atomic load, nothing beside a match.
class Evaluation {
 public:
  explicit Evaluation(std::stop_token stop) : stop_(std::move(stop)) {}
  void next() {
    if (const auto& hook = evaluation_hook()) hook(evaluated_);
    if (stop_.stop_requested()) throw Cancelled();
    ++evaluated_;
  }

 private:
  std::stop_token stop_;
  size_t evaluated_ = 0;
};

struct Searcher {
  const TagInfo* tag = nullptr;
  Op op = Op::equal;
  uint64_t number = 0;
  std::string text;
  std::shared_ptr<const re2::RE2> regex;

  // The field as Go's LookupFieldByTag gives it, for string tags.
  std::string string_value(FieldView stxn) const {
    FieldView field = stxn.path(tag->tag);
    switch (tag->kind) {
      case TagKind::string:
        return std::string(field.as_bytes().value_or(""));
      case TagKind::address: {
        auto bytes = field.as_bytes();
        std::string raw =
            bytes && bytes->size() == 32 ? std::string(*bytes) : std::string(32, '\0');
        return algorand::encode_address(raw);
      }
      case TagKind::bytes:
        return encoding::base64_encode(field.as_bytes().value_or(""));
      case TagKind::bytes32: {
        auto bytes = field.as_bytes();
        return encoding::base64_encode(
            bytes && bytes->size() == 32
                ? *bytes
                : std::string_view(
                      "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32));
      }
      case TagKind::boolean:
        return field.as_bool().value_or(false) ? "true" : "false";
      default:
        return {};
    }
  }

  bool matches_one(FieldView stxn) const {
    if (tag->kind == TagKind::uint) {
      uint64_t v = stxn.path(tag->tag).as_uint().value_or(0);
      switch (op) {
        case Op::equal:
          return v == number;
        case Op::not_equal:
          return v != number;
        case Op::less:
          return v < number;
        case Op::less_equal:
          return v <= number;
        case Op::greater:
          return v > number;
        case Op::greater_equal:
          return v >= number;
        default:
          return false;
      }
    }
    std::string v = string_value(stxn);
    if (op == Op::equal) return v == text;
    return re2::RE2::PartialMatch(v, *regex);
  }

  // Go's Searcher.search: the transaction, then (search-inner) its inner ones.
  bool matches(FieldView stxn, bool search_inner, Evaluation& evaluation) const {
    evaluation.next();
    if (matches_one(stxn)) return true;
    if (!search_inner) return false;
    FieldView inner = inner_txns(stxn);
    for (size_t i = 0; i < inner.size(); ++i)
      if (matches(inner.at(i), search_inner, evaluation)) return true;
    return false;
  }
};

enum class Combine { any, all, none };

struct Filter {
  Combine combine = Combine::any;
  std::vector<Searcher> searchers;

  // Stops at the first expression that decides the outcome (Go evaluates
  // them all; nothing but the time differs, expressions have no effects).
  bool matches(FieldView stxn, bool search_inner, Evaluation& evaluation) const {
    for (const auto& s : searchers) {
      bool hit = s.matches(stxn, search_inner, evaluation);
      if (combine == Combine::any && hit) return true;
      if (combine == Combine::none && hit) return false;
      if (combine == Combine::all && !hit) return false;
    }
    return combine != Combine::any;
  }
};

constexpr const char* kSample =
    R"(# search inner transactions too (a match keeps the top-level transaction)
search-inner = true
# true: keep only matching transactions; false: a match keeps its whole group
omit-group-transactions = true
# each entry holds one of any / all / none; entries combine with AND
[[processors.config.filters]]
any = [ { tag = "txn.type", expression-type = "equal", expression = "pay" } ]
)";

class FilterProcessor final : public Processor {
 public:
  void configure(PluginConfig& config) override {
    search_inner_ = config.get_bool("search-inner", false);
    omit_group_ = config.get_bool("omit-group-transactions", false);
    auto entries = config.get_table_list("filters");
    for (size_t n = 0; n < entries.size(); ++n) {
      auto& entry = entries[n];
      std::string name = "filters[" + std::to_string(n) + "]";
      int ops = entry.contains("any") + entry.contains("all") + entry.contains("none");
      if (ops != 1)
        entry.fail({}, name +
                           ": illegal filter tag formation: it must hold exactly one of any, "
                           "all, none (it holds " +
                           std::to_string(ops) + ")");
      Filter filter;
      std::string key = entry.contains("any") ? "any" : entry.contains("all") ? "all" : "none";
      filter.combine = key == "any" ? Combine::any : key == "all" ? Combine::all : Combine::none;
      auto subs = entry.get_table_list(key);
      for (size_t k = 0; k < subs.size(); ++k)
        filter.searchers.push_back(
            make_searcher(subs[k], name + "." + key + "[" + std::to_string(k) + "]"));
      entry.finish();
      filters_.push_back(std::move(filter));
    }
  }

  void init(const InitContext&, std::stop_token) override {}

  void process(BlockData& block, std::stop_token stop) override {
    if (filters_.empty()) return;
    std::vector<size_t> kept(block.txn_count());
    for (size_t i = 0; i < kept.size(); ++i) kept[i] = i;
    Evaluation evaluation(stop);
    for (const auto& filter : filters_) kept = search_and_filter(block, kept, filter, evaluation);
    if (kept.size() != block.txn_count()) block.keep_payset_entries(kept);
  }

  void close() override {}

 private:
  static Searcher make_searcher(PluginConfig& sub, const std::string& name) {
    Searcher s;
    std::string tag = sub.get_string("tag", "");
    s.tag = find_tag(tag);
    if (!s.tag)
      sub.fail("tag", name + ": unknown tag: " + tag + " (see Go Conduit's Filter_tags.md)");
    // Go: "filter processor Init(): could not make expression: <why>".
    const std::string cannot = name + ": could not make expression: ";
    std::string type = sub.get_string("expression-type", "");
    auto op = parse_op(type);
    if (!op)
      sub.fail("expression-type", cannot + "expression type (" + type + ") is not supported");
    s.op = *op;
    auto expression = sub.get_scalar_text("expression");
    if (!expression) sub.fail({}, name + ": 'expression' is required");
    if (s.tag->kind == TagKind::uint) {
      if (s.op == Op::regex)
        sub.fail("expression-type",
                 cannot + "target type (numeric) does not support regex filters");
      const std::string& t = *expression;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), s.number);
      if (t.empty() || ec != std::errc() || end != t.data() + t.size())
        sub.fail("expression", cannot + "search string \"" + t + "\" is not a valid uint64");
    } else {
      if (s.op != Op::equal && s.op != Op::regex)
        sub.fail("expression-type",
                 cannot + "target type (string) does not support " + type + " filters");
      s.text = *expression;
      if (s.op == Op::regex) {
        re2::RE2::Options options;  // UTF-8, Perl classes and \b, as Go's regexp.Compile
        options.set_log_errors(false);
        auto regex = std::make_shared<const re2::RE2>(go_named_groups(s.text), options);
        if (!regex->ok())
          sub.fail("expression", cannot + "error parsing regexp: " + regex->error());
        s.regex = std::move(regex);
      }
      // An address compared for equality must be one (a typo would never match).
      if (s.tag->kind == TagKind::address && s.op == Op::equal && !algorand::decode_address(s.text))
        sub.fail("expression", name + ": '" + s.text + "' is not a valid Algorand address");
    }
    sub.finish();
    return s;
  }

  // Go's Filter.SearchAndFilter over the entries still kept.
  std::vector<size_t> search_and_filter(const BlockData& block, const std::vector<size_t>& in,
                                        const Filter& filter, Evaluation& evaluation) const {
    auto group = [&](size_t k) {
      return group_id(block.payset_entry(in[k])).value_or(std::string_view());
    };
    auto is_zero = [](std::string_view g) {
      return g.find_first_not_of('\0') == std::string_view::npos;
    };
    std::vector<size_t> out;
    size_t first = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      if (group(first) != group(i) && !(is_zero(group(first)) && is_zero(group(i)))) first = i;
      if (!filter.matches(block.payset_entry(in[i]), search_inner_, evaluation)) continue;
      if (!is_zero(group(i)) && !omit_group_) {
        size_t j = first;
        auto g = group(first);
        for (; j < in.size() && group(j) == g; ++j) out.push_back(in[j]);
        i = j - 1;
      } else {
        out.push_back(in[i]);
      }
    }
    return out;
  }

  bool search_inner_ = false;
  bool omit_group_ = false;
  std::vector<Filter> filters_;
};

}  // namespace

void set_filter_evaluation_hook(std::function<void(size_t evaluated)> hook) {
  evaluation_hook() = std::move(hook);
}

std::vector<std::string_view> filter_processor_tags() {
  std::vector<std::string_view> tags;
  for (const auto& info : kTags) tags.push_back(info.tag);
  return tags;
}

void register_filter_processor(Registry& registry) {
  registry.add_processor({"filter_processor",
                          "Filter transactions out of the results according to a configurable "
                          "pattern.",
                          kSample, false},
                         [] { return std::make_unique<FilterProcessor>(); });
}

}  // namespace conduit::plugins
