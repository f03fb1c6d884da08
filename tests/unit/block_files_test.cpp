// Block data on Go Conduit's fixtures: msgpack and JSON codecs, addresses, the
// genesis hash, and the file_reader / file_writer plugins alone and in a pipeline.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <locale.h>
#include <algorithm>
#include <clocale>
#include <cstring>
#include <cwchar>
#include <fstream>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "core/algorand.hpp"
#include "core/block_json.hpp"
#include "core/block_msgpack.hpp"
#include "core/checkpoint.hpp"
#include "core/encoding.hpp"
#include "core/fs.hpp"
#include "core/pipeline.hpp"
#include "plugins/builtin.hpp"
#include "plugins/files/block_files.hpp"
#include "test_support.hpp"
#include "v42_block.hpp"

using namespace conduit;
using namespace conduit::test;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kFixtureRounds = 10;

std::string fixture_msgpack(uint64_t round) {
  auto gz = read_file(fixtures_dir() / (std::to_string(round) + "_block.msgp.gz"));
  return plugins::gzip_decompress(gz, plugins::kMaxBlockFileBytes);
}

std::string bytes_of(const msgpack::object& o) {
  return std::string(o.via.bin.ptr, o.via.bin.size);
}

BlockData block_from(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  fill(packer);
  return BlockData::decode_msgpack({buffer.data(), buffer.size()});
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// --- codecs -----------------------------------------------------------------

TEST(BlockCodec, DecodesEveryFixtureAndReencodesByteIdentical) {
  CONDUIT_REQUIRE_FIXTURES();
  size_t txns = 0;
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    std::string bytes = fixture_msgpack(r);
    BlockData block = BlockData::decode_msgpack(bytes);
    EXPECT_EQ(block.round(), r);
    txns += block.txn_count();
    EXPECT_EQ(block.encode_msgpack(), bytes) << "round " << r;
    EXPECT_EQ(block.clone().encode_msgpack(), bytes) << "round " << r;
  }
  EXPECT_GT(txns, 0u);
}

TEST(BlockCodec, JsonRoundTripGivesTheSameMsgpack) {
  CONDUIT_REQUIRE_FIXTURES();
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    std::string bytes = fixture_msgpack(r);
    BlockData block = BlockData::decode_msgpack(bytes);
    std::string json = encode_block_json(block);
    BlockData back = decode_block_json(json);
    EXPECT_EQ(back.round(), r);
    EXPECT_EQ(back.txn_count(), block.txn_count());
    EXPECT_EQ(back.encode_msgpack(), bytes) << "round " << r;
    // And JSON -> msgpack -> JSON is stable.
    EXPECT_EQ(encode_block_json(back), json) << "round " << r;
  }
}

TEST(BlockCodec, JsonUsesAddressesBase64AndGoLayout) {
  CONDUIT_REQUIRE_FIXTURES();
  auto genesis = nlohmann::json::parse(read_file(fixtures_dir() / "genesis.json"));
  BlockData block = BlockData::decode_msgpack(fixture_msgpack(1));
  std::string json = encode_block_json(block);
  // Go's layout: 2-space indent, "key": value.
  EXPECT_EQ(json.rfind("{\n  \"block\": {\n    \"fees\": \"", 0), 0u) << json.substr(0, 80);
  auto parsed = nlohmann::json::parse(encode_block_json(block, {.invalid_utf8 = Utf8Mode::replace}),
                                      nullptr, false);
  ASSERT_FALSE(parsed.is_discarded());
  // Header addresses: the genesis's fee sink and rewards pool, as base64 of
  // their 32 bytes (go-algorand-sdk's Address.MarshalText).
  auto base64_of_address = [](const std::string& address) {
    auto raw = algorand::decode_address(address);
    EXPECT_TRUE(raw.has_value()) << address;
    return encoding::base64_encode(raw.value_or(""));
  };
  EXPECT_EQ(parsed["block"]["fees"], base64_of_address(genesis["fees"]));
  EXPECT_EQ(parsed["block"]["rwd"], base64_of_address(genesis["rwd"]));
  const auto* header = mp::find(block.tree().root, "block");
  ASSERT_NE(header, nullptr);
  EXPECT_EQ(parsed["block"]["gh"], encoding::base64_encode(bytes_of(*mp::find(*header, "gh"))));
  ASSERT_GT(parsed["payset"].size(), 0u);
  for (const auto& stxn : parsed["payset"]) {
    auto snd = encoding::base64_decode(std::string(stxn["txn"]["snd"]));
    ASSERT_TRUE(snd.has_value());
    EXPECT_EQ(snd->size(), 32u);
  }
  // Opt-in: checksummed base32, as the genesis writes them.
  auto readable = nlohmann::json::parse(
      encode_block_json(block,
                        {.addresses = AddressForm::base32, .invalid_utf8 = Utf8Mode::replace}),
      nullptr, false);
  ASSERT_FALSE(readable.is_discarded());
  EXPECT_EQ(readable["block"]["fees"], genesis["fees"]);
  EXPECT_EQ(readable["block"]["rwd"], genesis["rwd"]);
  for (const auto& stxn : readable["payset"])
    EXPECT_TRUE(algorand::decode_address(std::string(stxn["txn"]["snd"])).has_value());
  EXPECT_EQ(readable["block"]["gh"], parsed["block"]["gh"]);  // digests stay base64
}

// go-algorand-sdk types/address_test.go TestUnmarshalAddress: the same address
// as base32+checksum and as base64; MarshalText gives the base64 form; a base64
// text of the wrong length is refused.
constexpr const char* kSdkAddressBase32 =
    "7HJBGRIWI7GDL42SOJNIAZ7LJ7EBEGKGE5S52QZXAWDXOHDKMDFR6AUXDE";
constexpr const char* kSdkAddressBase64 = "+dITRRZHzDXzUnJagGfrT8gSGUYnZd1DNwWHdxxqYMs=";

TEST(BlockCodec, AddressFieldsAreWrittenAndReadAsTheGoSdkDoes) {
  std::string raw = *encoding::base64_decode(kSdkAddressBase64);
  ASSERT_EQ(algorand::decode_address(kSdkAddressBase32), raw);
  // Every address-typed field of the sdk's types (block.go, transaction.go,
  // applications.go, asset.go, heartbeat.go, statedelta.go).
  const std::vector<std::string> fields = {
      R"("block": {"prp": "@", "fees": "@", "rwd": "@", "partupdrmv": ["@"], "partupdabs": ["@"]})",
      R"("payset": [{"sgnr": "@", "txn": {"snd": "@", "rcv": "@", "close": "@", "rekey": "@",
         "asnd": "@", "arcv": "@", "aclose": "@", "fadd": "@", "apat": ["@"], "al": [{"d": "@"}],
         "apar": {"m": "@", "r": "@", "f": "@", "c": "@"}, "hb": {"a": "@"}},
         "dt": {"sa": ["@"], "itx": [{"txn": {"snd": "@"}}]}}])",
      R"("delta": {"Accts": {"Accts": [{"Addr": "@", "AuthAddr": "@"}],
         "AppResources": [{"Addr": "@", "Params": {"Params": {"ss": "@"}}}],
         "AssetResources": [{"Addr": "@", "Params": {"Params": {"m": "@"}}}]},
         "Creatables": {"5": {"Creator": "@"}}})",
  };
  for (const auto& field : fields) {
    auto with = [&](const std::string& text) {
      std::string json = "{" + field + "}";
      for (size_t at = 0; (at = json.find('@', at)) != std::string::npos; at += text.size())
        json.replace(at, 1, text);
      return json;
    };
    BlockData from_base32 = decode_block_json(with(kSdkAddressBase32));
    BlockData from_base64 = decode_block_json(with(kSdkAddressBase64));
    EXPECT_EQ(from_base32.encode_msgpack(), from_base64.encode_msgpack()) << field;
    std::string go_json = encode_block_json(from_base32);
    EXPECT_EQ(go_json.find(kSdkAddressBase32), std::string::npos) << go_json;
    EXPECT_NE(go_json.find(std::string("\"") + kSdkAddressBase64 + "\""), std::string::npos);
    std::string readable = encode_block_json(from_base64, {.addresses = AddressForm::base32});
    EXPECT_EQ(readable.find(kSdkAddressBase64), std::string::npos) << readable;
    EXPECT_EQ(decode_block_json(readable).encode_msgpack(), from_base64.encode_msgpack());
    // The base32 form is written exactly where base64 was, nowhere else.
    std::string expected = go_json;
    for (size_t at = 0; (at = expected.find(kSdkAddressBase64, at)) != std::string::npos;)
      expected.replace(at, std::strlen(kSdkAddressBase64), kSdkAddressBase32);
    EXPECT_EQ(readable, expected);
  }
  // The sdk's error cases: base64 of the wrong length, neither form.
  EXPECT_THROW(decode_block_json(R"({"payset": [{"txn": {"snd": "AAE="}}]})"), BlockDecodeError);
  EXPECT_THROW(decode_block_json(R"({"payset": [{"txn": {"snd": "bogus"}}]})"), BlockDecodeError);
  // A byte field (not an address) never takes the base32 form.
  BlockData digest =
      decode_block_json(std::string(R"({"block": {"gh": ")") + kSdkAddressBase64 + "\"}}");
  EXPECT_NE(encode_block_json(digest, {.addresses = AddressForm::base32}).find(kSdkAddressBase64),
            std::string::npos);
}

namespace {

// An independent model of Go Conduit's file_writer JSON for a block read
// from msgpack: go-codec writes []byte, fixed byte arrays and the sdk's
// Address (MarshalText) all as base64; integer and byte map keys as strings
// (MapKeyAsString); struct keys as their compact JSON; 2-space indent, no
// trailing newline; invalid UTF-8 as \ufffd per byte, U+2028/9 escaped.
// Go writes a byte that starts no valid UTF-8 sequence as \ufffd, one per
// byte (utf8.DecodeRune: RuneError, width 1); glibc's C.UTF-8 decoder says
// which bytes those are. Each becomes the private-use character U+E000+byte
// here (so that distinct map keys stay distinct, as in Go's output, which
// then has two equal keys) and \ufffd in go_json_of.
std::string go_string(std::string_view bytes) {
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
  locale_t previous = uselocale(utf8);
  std::string out;
  std::mbstate_t state{};
  for (size_t i = 0; i < bytes.size();) {
    wchar_t wc;
    size_t n = std::mbrtowc(&wc, bytes.data() + i, bytes.size() - i, &state);
    if (n == static_cast<size_t>(-1) || n == static_cast<size_t>(-2)) {
      unsigned marker = 0xe000 + static_cast<unsigned char>(bytes[i]);
      out += static_cast<char>(0xe0 | (marker >> 12));
      out += static_cast<char>(0x80 | ((marker >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (marker & 0x3f));
      state = {};
      ++i;
    } else {
      n = n == 0 ? 1 : n;
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  uselocale(previous);
  return out;
}

nlohmann::ordered_json go_model(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::STR:
      return go_string({o.via.str.ptr, o.via.str.size});
    case msgpack::type::BIN:
      return encoding::base64_encode(bytes_of(o));
    case msgpack::type::ARRAY: {
      auto out = nlohmann::ordered_json::array();
      for (uint32_t i = 0; i < o.via.array.size; ++i) out.push_back(go_model(o.via.array.ptr[i]));
      return out;
    }
    case msgpack::type::MAP: {
      // go-codec's canonical order (kMapCanonical): a string key by its Go
      // string, an integer key by value, any other key (a byte array, a
      // struct) by the JSON go-codec encodes it to.
      std::vector<std::tuple<int, uint64_t, std::string, std::string, uint32_t>> keys;
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& key = o.via.map.ptr[i].key;
        if (key.type == msgpack::type::STR) {
          std::string raw(key.via.str.ptr, key.via.str.size);
          keys.emplace_back(1, 0, raw, go_string(raw), i);
        } else if (key.type == msgpack::type::POSITIVE_INTEGER) {
          keys.emplace_back(0, key.via.u64, "", std::to_string(key.via.u64), i);
        } else if (key.type == msgpack::type::BIN) {
          std::string text = encoding::base64_encode(bytes_of(key));
          keys.emplace_back(1, 0, "\"" + text + "\"", text, i);
        } else {
          std::string text = go_model(key).dump();
          keys.emplace_back(1, 0, text, text, i);
        }
      }
      std::sort(keys.begin(), keys.end());
      auto out = nlohmann::ordered_json::object();
      for (const auto& [group, number, order, name, i] : keys)
        out[name] = go_model(o.via.map.ptr[i].val);
      return out;
    }
    default:
      ADD_FAILURE() << "unexpected msgpack type " << o.type;
      return nullptr;
  }
}

std::string go_json_of(const BlockData& block) {
  std::string text = go_model(block.tree().root).dump(2);
  // nlohmann writes U+2028/9 as raw UTF-8; go-codec escapes them.
  for (auto [raw, escaped] :
       {std::pair{"\xe2\x80\xa8", "\\u2028"}, std::pair{"\xe2\x80\xa9", "\\u2029"}})
    for (size_t at = 0; (at = text.find(raw, at)) != std::string::npos;)
      text.replace(at, 3, escaped);
  // The markers of bytes that are not UTF-8: U+E000..U+E0FF, EE 80..83 xx.
  for (size_t at = 0; (at = text.find('\xee', at)) != std::string::npos;) {
    if (at + 2 < text.size() && (static_cast<unsigned char>(text[at + 1]) & 0xfc) == 0x80)
      text.replace(at, 3, "\\ufffd");
    else
      ++at;
  }
  return text;
}

bool all_strings_utf8(const std::string& go_json, const std::string& escaped_json) {
  return go_json.find("\\ufffd") == std::string::npos &&
         escaped_json.find("\\udc") == std::string::npos;
}

}  // namespace

TEST(BlockCodec, JsonIsByteForByteGoConduitsForEveryFixtureRound) {
  CONDUIT_REQUIRE_FIXTURES();
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    BlockData block = BlockData::decode_msgpack(fixture_msgpack(r));
    std::string go_json = go_json_of(block);
    EXPECT_EQ(encode_block_json(block, {.invalid_utf8 = Utf8Mode::replace}), go_json)
        << "round " << r;
    // The default (escape) differs only where a string is not UTF-8.
    std::string escaped = encode_block_json(block);
    if (all_strings_utf8(go_json, escaped)) {
      EXPECT_EQ(escaped, go_json) << "round " << r;
    }
  }
}

TEST(BlockCodec, ReadsGoWrittenJsonBackToTheFixtureBytesForEveryRound) {
  CONDUIT_REQUIRE_FIXTURES();
  size_t exact = 0;
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    std::string bytes = fixture_msgpack(r);
    BlockData block = BlockData::decode_msgpack(bytes);
    std::string go_json = go_json_of(block);
    BlockData back = decode_block_json(go_json);
    EXPECT_EQ(back.round(), r);
    EXPECT_EQ(back.txn_count(), block.txn_count());
    if (all_strings_utf8(go_json, encode_block_json(block))) {
      EXPECT_EQ(back.encode_msgpack(), bytes) << "round " << r;
      ++exact;
    } else {
      // Go lost the bytes that are not UTF-8: they read back as U+FFFD, as
      // Go reads them; everything else is the fixture's.
      std::string expected = go_json;
      for (size_t at = 0; (at = expected.find("\\ufffd", at)) != std::string::npos;)
        expected.replace(at, 6, "\xef\xbf\xbd");
      // The same values; keys that read back with U+FFFD sort by their new bytes.
      EXPECT_EQ(nlohmann::json::parse(encode_block_json(back)), nlohmann::json::parse(expected))
          << "round " << r;
    }
    // Go's file with base32 addresses (the sdk reads either) reads the same.
    std::string base32_json = encode_block_json(block, {.addresses = AddressForm::base32});
    EXPECT_EQ(decode_block_json(base32_json).encode_msgpack(), bytes) << "round " << r;
  }
  EXPECT_GT(exact, 0u);
}

// go-codec's canonical JSON sorts a map with byte-array keys by the keys'
// encoded text (base64), not by their bytes as msgpack does: '+', '/' and the
// digits come before the letters there, after them in the bytes.
TEST(BlockCodec, JsonOrdersTxidsByTheirBase64TextAsGoDoes) {
  CONDUIT_REQUIRE_FIXTURES();
  std::string bytes = fixture_msgpack(1);
  BlockData block = BlockData::decode_msgpack(bytes);
  const msgpack::object* txids = mp::find(*mp::find(block.tree().root, "delta"), "Txids");
  ASSERT_NE(txids, nullptr);
  std::vector<std::string> msgpack_order;
  for (uint32_t i = 0; i < txids->via.map.size; ++i)
    msgpack_order.push_back(encoding::base64_encode(bytes_of(txids->via.map.ptr[i].key)));
  std::vector<std::string> go_order = msgpack_order;
  std::sort(go_order.begin(), go_order.end());
  ASSERT_NE(go_order, msgpack_order) << "the fixture no longer tells the two orders apart";

  std::string json = encode_block_json(block);
  auto parsed =
      nlohmann::ordered_json::parse(encode_block_json(block, {.invalid_utf8 = Utf8Mode::replace}));
  std::vector<std::string> written;
  for (const auto& [key, value] : parsed["delta"]["Txids"].items()) written.push_back(key);
  EXPECT_EQ(written, go_order);
  // Read back, the map is in msgpack's order again: the fixture's bytes.
  EXPECT_EQ(decode_block_json(json).encode_msgpack(), bytes);
}

// Consensus v42: `pqsig` on a top-level, a logic-signature and an inner
// transaction, and the header's `ld`, as go-algorand-sdk's types carry them.
// Expected JSON per go-codec: the scheme ([2]byte) and the key and signature
// ([]byte) base64, the salt (uint8) a number, omitted when 0; keys sorted.
TEST(BlockCodec, V42PqsigAndLoadKeepTheirMsgpackAndWriteGosJson) {
  std::string bytes = v42::block_msgpack();
  BlockData block = BlockData::decode_msgpack(bytes);
  EXPECT_EQ(block.txn_count(), 3u);
  EXPECT_EQ(block.encode_msgpack(), bytes);
  EXPECT_EQ(block.header()["ld"].as_uint(), v42::kLoad);
  EXPECT_EQ(block.payset_entry(0).path("pqsig.sch").as_bytes(), "f1");

  std::string json = encode_block_json(block);
  EXPECT_EQ(json, go_json_of(block));
  auto parsed = nlohmann::ordered_json::parse(json);
  EXPECT_EQ(parsed["block"]["ld"], v42::kLoad);
  auto b64 = [](const std::string& bytes) { return encoding::base64_encode(bytes); };
  auto pq = [&](int key, int sig, bool salted) {
    std::string text = R"({"pk":")" + b64(v42::public_key(key)) + R"(","sch":"ZjE=","sig":")" +
                       b64(v42::signature(sig)) + R"(")";
    return text + (salted ? R"(,"slt":7})" : "}");
  };
  EXPECT_EQ(parsed["payset"][0]["pqsig"].dump(), pq(1, 1, true));
  EXPECT_EQ(parsed["payset"][1]["lsig"]["pqsig"].dump(), pq(2, 2, false));
  EXPECT_EQ(parsed["payset"][1]["lsig"]["l"], "CoEB");
  EXPECT_EQ(parsed["payset"][2]["pqsig"].dump(), pq(1, 3, true));
  EXPECT_EQ(parsed["payset"][2]["dt"]["itx"][0]["pqsig"].dump(), pq(4, 4, true));

  // Read back (Go's form and the base32 one): the same msgpack.
  EXPECT_EQ(decode_block_json(json).encode_msgpack(), bytes);
  std::string base32 = encode_block_json(block, {.addresses = AddressForm::base32});
  EXPECT_EQ(decode_block_json(base32).encode_msgpack(), bytes);
  // A scheme that is not base64 is a field of the wrong shape.
  std::string bad = json;
  bad.replace(bad.find("\"ZjE=\""), 6, "\"f1!\"");
  EXPECT_THROW(decode_block_json(bad), BlockDecodeError);
}

TEST(BlockCodec, StringsThatAreNotUtf8SurviveJson) {
  std::string binary("bx:\x00\x01\x80\xff\xc3(", 9);
  std::string text = "quote\" back\\ nl\n tab\t ctl\x01 <&> \xe2\x80\xa8 caf\xc3\xa9";
  BlockData block = block_from([&](auto& p) {
    p.pack_map(2);
    p.pack("block");
    p.pack_map(1);
    p.pack("rnd");
    p.pack(5);
    p.pack("delta");
    p.pack_map(1);
    p.pack("KvMods");
    p.pack_map(1);
    p.pack(binary);
    p.pack_map(2);
    p.pack("Data");
    p.pack_bin(3);
    p.pack_bin_body("abc", 3);
    p.pack("Note");
    p.pack(text);
  });
  std::string json = encode_block_json(block);
  EXPECT_NE(json.find(R"("bx:\u0000\u0001\udc80\udcff\udcc3(")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"(quote\" back\\ nl\n tab\t ctl\u0001 <&> \u2028 café)"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("Data": "YWJj")"), std::string::npos) << json;
  EXPECT_EQ(decode_block_json(json).encode_msgpack(), block.encode_msgpack());
  // Go's form: one \ufffd per byte that starts no valid sequence.
  std::string go_json = encode_block_json(block, {.invalid_utf8 = Utf8Mode::replace});
  EXPECT_NE(go_json.find(R"("bx:\u0000\u0001\ufffd\ufffd\ufffd(")"), std::string::npos) << go_json;
  EXPECT_EQ(go_json.find("\\udc"), std::string::npos);
}

TEST(BlockCodec, IntegerAndByteMapKeysRoundTrip) {
  BlockData block = block_from([](auto& p) {
    p.pack_map(1);
    p.pack("delta");
    p.pack_map(2);
    p.pack("Creatables");
    p.pack_map(1);
    p.pack(uint64_t{1234});
    p.pack_map(1);
    p.pack("Ctype");
    p.pack(1);
    p.pack("Txids");
    p.pack_map(1);
    p.pack_bin(32);
    p.pack_bin_body(std::string(32, 'x').data(), 32);
    p.pack_map(1);
    p.pack("Intra");
    p.pack(3);
  });
  std::string json = encode_block_json(block);
  EXPECT_NE(json.find(R"("1234": {)"), std::string::npos) << json;
  EXPECT_EQ(decode_block_json(json).encode_msgpack(), block.encode_msgpack());
}

TEST(BlockCodec, DropCertificateRemovesOnlyTheCertificate) {
  BlockData block = block_from([](auto& p) {
    p.pack_map(2);
    p.pack("block");
    p.pack_map(1);
    p.pack("rnd");
    p.pack(3);
    p.pack("cert");
    p.pack_map(1);
    p.pack("rnd");
    p.pack(3);
  });
  std::string msgp = encode_block_msgpack(block, {.drop_certificate = true});
  BlockData dropped = BlockData::decode_msgpack(msgp);
  EXPECT_EQ(dropped.round(), 3u);
  EXPECT_EQ(mp::find(dropped.tree().root, "cert"), nullptr);
  EXPECT_EQ(encode_block_json(block, {.drop_certificate = true}).find("cert"), std::string::npos);
  EXPECT_NE(encode_block_json(block).find("cert"), std::string::npos);
  EXPECT_EQ(encode_block_msgpack(block), block.encode_msgpack());
}

TEST(BlockCodec, MalformedJsonIsADecodeErrorNeverACrash) {
  const std::vector<std::string> bad = {
      "",
      "{",
      "[]",
      R"({"block": {"rnd": 1}} x)",
      R"({"block": {"gh": "not base64!"}})",
      R"({"payset": [{"txn": {"snd": "AAAA"}}]})",
      R"({"block": {"rnd": 18446744073709551616}})",
      R"({"block": {"rnd": 01}})",
      R"({"delta": {"Creatables": {"x": {}}}})",
      R"({"a": "\u12"})",
      "{\"a\": \"tab\there\"}",
      std::string(1000, '[') + std::string(1000, ']'),
  };
  for (const auto& json : bad)
    EXPECT_THROW(decode_block_json(json), BlockDecodeError) << json.substr(0, 60);
}

TEST(BlockCodec, MalformedMsgpackIsADecodeError) {
  CONDUIT_REQUIRE_FIXTURES();
  std::string bytes = fixture_msgpack(1);
  EXPECT_THROW(BlockData::decode_msgpack(bytes.substr(0, bytes.size() / 2)), BlockDecodeError);
  EXPECT_THROW(BlockData::decode_msgpack(bytes + "x"), BlockDecodeError);
  EXPECT_THROW(BlockData::decode_msgpack("\x93\x01\x02\x03"), BlockDecodeError);
  // Headers that promise more than the input holds are refused before any
  // allocation (found by the fuzzer: one array header in a mutated fixture
  // made msgpack-cxx ask for 128 GiB).
  using namespace std::string_literals;
  for (const std::string& bad :
       {"\xdd\xff\xff\xff\xff"s, "\x81\xa1k\xdd\x20\x00\x00\x00\x00"s, "\xdf\x7f\xff\xff\xff"s,
        "\xc6\xff\xff\xff\xff"s, "\x81\xa1k\x9f"s, "\xc1"s, ""s})
    EXPECT_THROW(BlockData::decode_msgpack(bad), BlockDecodeError) << bad.size();
}

// decode_msgpack reads a block's round and transaction count from the bytes
// and builds the tree only when something looks at it (a pass-through never
// does). What it reads must be what the tree says, whatever the layout: the
// tree is the reference (refresh() reads them again from it).
TEST(BlockCodec, TheRoundAndCountReadWithoutTheTreeAreTheTrees) {
  using namespace std::string_literals;
  auto expect_same = [](const std::string& bytes, uint64_t round, size_t txns) {
    BlockData block = BlockData::decode_msgpack(bytes);
    EXPECT_EQ(block.round(), round);
    EXPECT_EQ(block.txn_count(), txns);
    block.refresh();  // from the tree
    EXPECT_EQ(block.round(), round);
    EXPECT_EQ(block.txn_count(), txns);
  };
  // payset before block; rnd an int8 holding a positive value, after another field
  expect_same(
      "\x82\xa6payset\x93\x01\x02\x03\xa5"
      "block\x82\xa1x\x91\xc0\xa3rnd\xd0\x05"s,
      5, 3);
  // the first of two "block" keys and of two "rnd" keys counts, as the tree's lookup
  expect_same(
      "\x82\xa5"
      "block\x82\xa3rnd\x07\xa3rnd\x08\xa5"
      "block\x81\xa3rnd\x09"s,
      7, 0);
  // a non-str key, a bin "block" key, a uint64 round
  expect_same(
      "\x83\x01\xa1x\xc4\x05"
      "block\x80\xa5"
      "block\x81\xa3rnd\xcf\x00\x00\x00\x01\x00\x00\x00\x00"s,
      uint64_t{1} << 32, 0);
  expect_same(
      "\x82\xa5"
      "block\x80\xa6payset\xc0"s,
      0, 0);  // no rnd; a nil payset
  expect_same("\x80"s, 0, 0);
  CONDUIT_REQUIRE_FIXTURES();
  for (int round = 0; round <= 9; ++round) {
    std::string bytes = fixture_msgpack(round);
    BlockData block = BlockData::decode_msgpack(bytes);
    EXPECT_EQ(block.round(), uint64_t(round));
    size_t txns = block.txn_count();
    block.refresh();
    EXPECT_EQ(block.txn_count(), txns) << "round " << round;
    EXPECT_EQ(block.encode_msgpack(), bytes) << "round " << round;
  }
}

// What the tree would refuse is refused by decode_msgpack itself, not later
// by whoever first looks at the block.
TEST(BlockCodec, WhatTheTreeRefusesIsRefusedAtDecode) {
  using namespace std::string_literals;
  for (const std::string& bad :
       {"\x81\xa5"
        "block\x81\xa3rnd\xff"s,  // a negative round
        "\x81\xa5"
        "block\x81\xa3rnd\xa1x"s,  // a string round
        "\x81\xa5"
        "block\x91\x01"s,                                    // block not a map
        "\x81\xa6payset\x80"s,                               // payset not an array
        "\x91\x01"s,                                         // not a map
        "\x80\x80"s,                                         // trailing bytes
        "\x81\xa1k"s + std::string(300, '\x91') + "\x01"s})  // nested too deep
    EXPECT_THROW(BlockData::decode_msgpack(bad), BlockDecodeError) << bad.size();
}

// --- addresses, base64, genesis ---------------------------------------------

TEST(Algorand, AddressesAreChecksummedBase32) {
  std::string zero(32, '\0');
  EXPECT_EQ(algorand::encode_address(zero),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ");
  EXPECT_EQ(algorand::decode_address("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ"),
            zero);
  // Wrong checksum, wrong length, bad alphabet.
  EXPECT_FALSE(
      algorand::decode_address("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKA"));
  EXPECT_FALSE(algorand::decode_address("AAAA"));
  EXPECT_FALSE(
      algorand::decode_address("aAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAY5HFKQ"));
  std::string key;
  for (int i = 0; i < 32; ++i) key += static_cast<char>(i * 7 + 1);
  EXPECT_EQ(algorand::decode_address(algorand::encode_address(key)), key);
}

TEST(Algorand, Base64IsGoStdEncoding) {
  EXPECT_EQ(encoding::base64_encode(""), "");
  EXPECT_EQ(encoding::base64_encode("f"), "Zg==");
  EXPECT_EQ(encoding::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(encoding::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(encoding::base64_decode("Zm9vYg=="), "foob");
  EXPECT_FALSE(encoding::base64_decode("Zh=="));  // non-zero trailing bits
  EXPECT_FALSE(encoding::base64_decode("Zg="));
  EXPECT_FALSE(encoding::base64_decode("Zm9v!A=="));
}

// The fixture blocks carry a synthetic genesis hash, so this checks the
// properties of the computation: canonical (independent of key order and
// whitespace), sensitive to every field, base64 of 32 bytes.
TEST(Algorand, GenesisHashIsCanonical) {
  CONDUIT_REQUIRE_FIXTURES();
  std::string text = read_file(fixtures_dir() / "genesis.json");
  Genesis genesis = algorand::parse_genesis(text);
  EXPECT_EQ(genesis.network, "generated-network");
  EXPECT_EQ(genesis.id, "v1");
  EXPECT_EQ(genesis.json, text);
  auto digest = encoding::base64_decode(genesis.hash);
  ASSERT_TRUE(digest.has_value());
  EXPECT_EQ(digest->size(), 32u);

  auto doc = nlohmann::json::parse(text);
  EXPECT_EQ(algorand::parse_genesis(doc.dump()).hash, genesis.hash);  // compact, sorted
  nlohmann::ordered_json reordered;
  for (const char* key : {"rwd", "proto", "network", "id", "fees", "alloc"})
    reordered[key] = doc[key];
  EXPECT_EQ(algorand::parse_genesis(reordered.dump(1)).hash, genesis.hash);

  auto changed = doc;
  changed["network"] = "othernet";
  EXPECT_NE(algorand::parse_genesis(changed.dump()).hash, genesis.hash);
  changed = doc;
  changed["alloc"][0]["comment"] = "x";
  EXPECT_NE(algorand::parse_genesis(changed.dump()).hash, genesis.hash);
  changed = doc;
  changed["alloc"][1]["state"]["algo"] = 1;
  EXPECT_NE(algorand::parse_genesis(changed.dump()).hash, genesis.hash);

  EXPECT_THROW(algorand::parse_genesis("{"), algorand::GenesisError);
  EXPECT_THROW(algorand::parse_genesis(R"({"alloc": 3})"), algorand::GenesisError);
  EXPECT_THROW(algorand::parse_genesis(R"({"alloc": [{"state": {"vote": "xx"}}]})"),
               algorand::GenesisError);
}

// --- file names and gzip -------------------------------------------------------

TEST(BlockFiles, FilenamePatternsFollowGoFmt) {
  using plugins::FilenamePattern;
  auto p = FilenamePattern::parse("%[1]d_block.msgp.gz");
  EXPECT_EQ(p.format(7), "7_block.msgp.gz");
  EXPECT_TRUE(p.gzip());
  EXPECT_EQ(p.encoding(), plugins::BlockFormat::msgpack);
  EXPECT_EQ(FilenamePattern::parse("%d.json").format(12), "12.json");
  EXPECT_EQ(FilenamePattern::parse("%[1]06d_%%.json").format(12), "000012_%.json");
  EXPECT_EQ(FilenamePattern::parse("%[1]d.json").encoding(), plugins::BlockFormat::json);
  for (const char* bad : {"%s.json", "block.txt", "%[1]d.yaml", "block.msgp", "a/%d.msgp", "%[1]"})
    EXPECT_THROW(FilenamePattern::parse(bad), std::invalid_argument) << bad;
}

TEST(BlockFiles, GzipRoundTripsAndRejectsTruncation) {
  std::string data(100000, 'a');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = static_cast<char>(i);
  std::string gz = plugins::gzip_compress(data);
  EXPECT_EQ(plugins::gzip_decompress(gz, 1 << 20), data);
  EXPECT_EQ(plugins::gzip_decompress(gz + gz, 1 << 20), data + data);  // two members
  EXPECT_THROW(plugins::gzip_decompress(gz.substr(0, gz.size() / 2), 1 << 20), BlockDecodeError);
  EXPECT_THROW(plugins::gzip_decompress("not gzip", 1 << 20), BlockDecodeError);
  EXPECT_THROW(plugins::gzip_decompress(gz, 1000), BlockDecodeError);  // over the limit
}

namespace {

// zlib's own streaming gunzip (what Go's compress/gzip and zcat implement).
std::string zlib_gunzip(std::string_view gz) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  std::string out;
  char buffer[1 << 14];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof(buffer);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof(buffer) - zs.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

// Runs `body` in a forked child and returns what it printed plus how much its
// peak RSS grew while `body` ran (KiB). A child, so that the peak measured is
// this call's alone and a failure to bound memory cannot take the test runner down.
struct ChildResult {
  std::string output;
  long rss_growth_kib = -1;
};
ChildResult in_child(const std::function<std::string()>& body) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    std::string text;
    try {
      text = body();
    } catch (const std::exception& e) {
      text = std::string("threw: ") + e.what();
    }
    ::getrusage(RUSAGE_SELF, &after);
    text = std::to_string(after.ru_maxrss - before.ru_maxrss) + "\n" + text;
    [[maybe_unused]] auto n = ::write(fds[1], text.data(), text.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string all;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof(buffer))) > 0;) all.append(buffer, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status)) << "child died: status " << status;
  ChildResult result;
  auto newline = all.find('\n');
  if (newline == std::string::npos) return result;
  result.rss_growth_kib = std::stol(all.substr(0, newline));
  result.output = all.substr(newline + 1);
  return result;
}

// A ~1 MB file that gunzips to 1 GiB of zeros: 1024 gzip members of 1 MiB each
// (several members are valid gzip, read by Go and zcat alike).
std::string gzip_bomb() {
  std::string member = plugins::gzip_compress(std::string(size_t{1} << 20, '\0'), 9);
  std::string bomb;
  for (int i = 0; i < 1024; ++i) bomb += member;
  return bomb;
}

}  // namespace

TEST(BlockFiles, GzipOutputIsReadByZlibAndZcat) {
  std::string data;
  for (int i = 0; i < 200000; ++i) data += std::to_string(i * 7919 % 1000) + ",";
  std::string gz = plugins::gzip_compress(data);
  EXPECT_EQ(zlib_gunzip(gz), data);
  TempDir tmp;
  write_text(tmp / "x.gz", gz);
  std::string command = "zcat " + (tmp / "x.gz").string() + " > " + (tmp / "x").string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(read_file(tmp / "x"), data);
}

TEST(BlockFiles, GzipTrailerIsOnlyAHint) {
  std::string data(300000, 'z');
  for (size_t i = 0; i < data.size(); i += 3) data[i] = static_cast<char>(i * 31);
  std::string gz = plugins::gzip_compress(data);
  // Several members: the last trailer names only the last member.
  std::string small = plugins::gzip_compress("tail");
  EXPECT_EQ(plugins::gzip_decompress(gz + small, 1 << 20), data + "tail");
  EXPECT_THROW(plugins::gzip_decompress(gz + small, data.size()), BlockDecodeError);
  // A trailer lying about the size (smaller, then larger than the limit) is refused.
  std::string lying = gz;
  lying[lying.size() - 4] = 10, lying[lying.size() - 3] = 0, lying[lying.size() - 2] = 0;
  EXPECT_THROW(plugins::gzip_decompress(lying, 1 << 20), BlockDecodeError);
  lying[lying.size() - 1] = 0x7f;
  std::string error = error_of([&] { plugins::gzip_decompress(lying, 1 << 20); });
  EXPECT_NE(error.find("exceeds 1048576 bytes"), std::string::npos) << error;
  EXPECT_THROW(plugins::gzip_decompress(gz + "x", 1 << 20), BlockDecodeError);  // trailing junk
}

// A 1 MB gzip bomb cost 2.1 GB of RSS before it was refused.
TEST(BlockFiles, GzipBombIsRefusedWithinTheConfiguredBound) {
  std::string bomb = gzip_bomb();
  ASSERT_LT(bomb.size(), size_t{2} << 20);
  constexpr size_t kLimit = size_t{16} << 20;
  ChildResult result = in_child([&] {
    plugins::gzip_decompress(bomb, kLimit);
    return std::string("decompressed");
  });
  EXPECT_NE(result.output.find("threw: decompressed data exceeds 16777216 bytes"),
            std::string::npos)
      << result.output;
  EXPECT_GE(result.rss_growth_kib, 0);
  EXPECT_LE(result.rss_growth_kib, long{kLimit / 1024}) << "peak RSS grew beyond the limit";

  // The same, one member whose trailer lies (claims 1 KiB): grows to the limit, no further.
  std::string member = plugins::gzip_compress(std::string(size_t{64} << 20, '\0'), 9);
  member[member.size() - 4] = 0, member[member.size() - 3] = 4, member[member.size() - 2] = 0,
                         member[member.size() - 1] = 0;
  result = in_child([&] {
    plugins::gzip_decompress(member, kLimit);
    return std::string("decompressed");
  });
  EXPECT_NE(result.output.find("exceeds 16777216 bytes"), std::string::npos) << result.output;
  EXPECT_LE(result.rss_growth_kib, long{kLimit / 1024}) << "peak RSS grew beyond the limit";
}

// --- memory of a decoded block ---------------------------------------------------

// A value of one msgpack byte (or two JSON characters) takes 24 bytes decoded:
// 160 MiB of them took 4.11 GB of RSS. The cost is known, and refused, before
// the tree is built.
TEST(BlockMemory, ADecodedBlockIsHeldToItsBudgetInMsgpackAndJson) {
  constexpr uint32_t kValues = 1 << 20;
  std::string msgpack = msgpack_block_of_zeros(1, kValues);
  std::string json = json_block_of_zeros(1, kValues);
  const size_t cost = msgpack_decoded_cost(msgpack);
  EXPECT_GE(cost, size_t{kValues} * 24);
  EXPECT_LT(cost, size_t{kValues} * 24 + 1024);

  BlockData block = BlockData::decode_msgpack(msgpack, cost);  // exactly the budget: accepted
  EXPECT_EQ(block.memory_cost(), cost);
  EXPECT_EQ(block.size_hint(), cost);
  EXPECT_EQ(decode_block_json(json, 4 * cost).memory_cost(), cost);  // the same tree

  for (size_t limit : {cost - 1, size_t{kValues}}) {
    try {
      BlockData::decode_msgpack(msgpack, limit);
      ADD_FAILURE() << "msgpack accepted over " << limit;
    } catch (const BlockTooLargeError& e) {
      EXPECT_EQ(e.limit(), limit);
      EXPECT_GE(e.estimate(), limit);
      std::string what = e.what();
      EXPECT_NE(what.find("max-block-memory = " + std::to_string(limit)), std::string::npos)
          << what;
      EXPECT_NE(what.find("raise max-block-memory"), std::string::npos) << what;
    }
    EXPECT_THROW(decode_block_json(json, limit), BlockTooLargeError) << limit;
  }
}

// Real blocks take about twice their msgpack size, far below the default.
TEST(BlockMemory, RealBlocksStayFarBelowTheDefaultBudget) {
  CONDUIT_REQUIRE_FIXTURES();
  for (uint64_t round = 0; round < 10; ++round) {
    std::string bytes = fixture_msgpack(round);
    BlockData block = BlockData::decode_msgpack(bytes, kDefaultMaxBlockMemory);
    EXPECT_EQ(block.memory_cost(), msgpack_decoded_cost(bytes)) << "round " << round;
    EXPECT_LE(block.memory_cost(), 4 * bytes.size()) << "round " << round;
    std::string json = encode_block_json(block);
    EXPECT_EQ(decode_block_json(json, kDefaultMaxBlockMemory).memory_cost(), block.memory_cost())
        << "round " << round;
  }
}

// --- the plugins -----------------------------------------------------------------

namespace {

class FilePluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CONDUIT_REQUIRE_FIXTURES();
    fs::create_directories(blocks_);
    fs::create_directories(data_);
    fs::copy_file(fixtures_dir() / "genesis.json", blocks_ / "genesis.json");
  }

  void copy_fixture(uint64_t round, const std::string& as = "") {
    fs::copy_file(fixtures_dir() / (std::to_string(round) + "_block.msgp.gz"),
                  blocks_ / (as.empty() ? std::to_string(round) + "_block.msgp.gz" : as));
  }

  Config config(const std::string& importer, const std::string& exporter) {
    write_text(data_ / "conduit.toml",
               "retry-count = 2\nretry-delay = \"0s\"\n[importer]\nname = \"file_reader\"\n"
               "[importer.config]\nblock-dir = \"" +
                   blocks_.string() + "\"\n" + importer +
                   "\n[[processors]]\nname = \"noop\"\n[exporter]\nname = \"file_writer\"\n"
                   "[exporter.config]\nblock-dir = \"" +
                   out_.string() + "\"\n" + exporter + "\n");
    return load_config(data_);
  }

  std::unique_ptr<Importer> reader(const std::string& extra = "missing-file-wait = \"0s\"") {
    Config c = config(extra, "");
    auto plugins = build_plugins(builtin_registry(), c);
    InitContext ctx{.data_dir = data_ / "importer_file_reader", .logger = &logger_};
    genesis_ = plugins.importer->init(ctx, {});
    return std::move(plugins.importer);
  }

  std::unique_ptr<Exporter> writer(const std::string& extra, uint64_t next_round) {
    Config c = config("", extra);
    auto plugins = build_plugins(builtin_registry(), c);
    InitContext ctx{.data_dir = data_ / "exporter_file_writer",
                    .next_round = next_round,
                    .genesis = &genesis_,
                    .logger = &logger_};
    plugins.exporter->init(ctx, {});
    return std::move(plugins.exporter);
  }

  PluginError plugin_error(Importer& importer, uint64_t round) {
    try {
      importer.get_block(round, {});
    } catch (const PluginError& e) {
      return e;
    }
    ADD_FAILURE() << "round " << round << " did not fail";
    return PluginError("", false);
  }

  std::vector<std::string> names(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir tmp_;
  fs::path data_ = tmp_ / "data";
  fs::path blocks_ = tmp_ / "blocks";
  fs::path out_ = tmp_ / "out";
  Genesis genesis_;
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_F(FilePluginTest, ReaderReportsTheGenesisAndReadsBlocks) {
  copy_fixture(0);
  copy_fixture(1);
  auto importer = reader();
  EXPECT_EQ(genesis_.network, "generated-network");
  EXPECT_EQ(genesis_.json, read_file(blocks_ / "genesis.json"));
  EXPECT_EQ(importer->get_block(1, {}).encode_msgpack(), fixture_msgpack(1));
  EXPECT_EQ(importer->get_block(0, {}).round(), 0u);
}

TEST_F(FilePluginTest, MissingFileIsRetryableAndBadFilesAreNamedErrors) {
  copy_fixture(3);
  copy_fixture(3, "4_block.msgp.gz");  // wrong round
  write_text(blocks_ / "5_block.msgp.gz", "this is not gzip");
  auto gz = read_file(fixtures_dir() / "6_block.msgp.gz");
  write_text(blocks_ / "6_block.msgp.gz", gz.substr(0, gz.size() / 2));             // truncated
  write_text(blocks_ / "7_block.msgp.gz", plugins::gzip_compress("\xde\x00\x01"));  // bad msgpack
  auto importer = reader();

  EXPECT_EQ(importer->get_block(3, {}).round(), 3u);
  PluginError missing = plugin_error(*importer, 2);
  EXPECT_TRUE(missing.retryable());
  EXPECT_NE(std::string(missing.what()).find("2_block.msgp.gz"), std::string::npos);
  for (uint64_t r : {4, 5, 6, 7}) {
    PluginError e = plugin_error(*importer, r);
    EXPECT_FALSE(e.retryable()) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(r) + "_block.msgp.gz"), std::string::npos)
        << e.what();
  }
  EXPECT_NE(std::string(plugin_error(*importer, 4).what()).find("holds round 3"),
            std::string::npos);
}

// A gzip bomb through file_reader with its default bound: refused, named,
// permanent, and memory stays within max-block-bytes.
TEST_F(FilePluginTest, ReaderRefusesAGzipBombWithinMaxBlockBytes) {
  write_text(blocks_ / "3_block.msgp.gz", gzip_bomb());
  auto importer = reader();
  ChildResult result = in_child([&] {
    try {
      importer->get_block(3, {});
    } catch (const PluginError& e) {
      return std::string(e.retryable() ? "retryable: " : "permanent: ") + e.what();
    }
    return std::string("decoded");
  });
  EXPECT_NE(result.output.find("permanent: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("3_block.msgp.gz"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("max-block-bytes"), std::string::npos) << result.output;
  EXPECT_GE(result.rss_growth_kib, 0);
  EXPECT_LE(result.rss_growth_kib, long{plugins::kMaxBlockFileBytes / 1024});

  // The bound is configurable: a fixture over it is refused the same way.
  copy_fixture(1);
  auto strict = reader("missing-file-wait = \"0s\"\nmax-block-bytes = 1000");
  PluginError e = plugin_error(*strict, 1);
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("1000 bytes"), std::string::npos) << e.what();
}

// 16 MiB of msgpack zeros (a 16 KiB .msgp.gz) needs 384 MiB decoded; 32 MiB of
// JSON "0," as much. Refused under the default max-block-memory (256 MiB),
// naming the file and the key, without building the tree.
TEST_F(FilePluginTest, ReaderRefusesABlockWhoseDecodedFormPassesMaxBlockMemory) {
  constexpr uint32_t kValues = 16 << 20;
  write_text(blocks_ / "3_block.msgp.gz",
             plugins::gzip_compress(msgpack_block_of_zeros(3, kValues), 9));
  write_text(blocks_ / "3_block.json.gz",
             plugins::gzip_compress(json_block_of_zeros(3, kValues), 9));
  struct Case {
    std::string pattern, file;
    long max_growth_kib;  // the inflated bytes, and for JSON the budget for its parse
  };
  for (const Case& c : {Case{"%[1]d_block.msgp.gz", "3_block.msgp.gz", long{64} << 10},
                        Case{"%[1]d_block.json.gz", "3_block.json.gz",
                             long{plugins::kMaxBlockFileBytes / 1024} + (long{96} << 10)}}) {
    auto importer = reader("missing-file-wait = \"0s\"\nfilename-pattern = \"" + c.pattern + "\"");
    ChildResult result = in_child([&] {
      try {
        importer->get_block(3, {});
      } catch (const PluginError& e) {
        return std::string(e.retryable() ? "retryable: " : "permanent: ") + e.what();
      }
      return std::string("decoded");
    });
    EXPECT_NE(result.output.find("permanent: "), std::string::npos) << result.output;
    EXPECT_NE(result.output.find(c.file), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("max-block-memory = 268435456"), std::string::npos)
        << result.output;
    EXPECT_GE(result.rss_growth_kib, 0);
    EXPECT_LE(result.rss_growth_kib, c.max_growth_kib) << c.file << ": peak RSS grew too far";
  }

  // The bound is configurable: a fixture over it is refused the same way.
  copy_fixture(1);
  auto strict = reader("missing-file-wait = \"0s\"\nmax-block-memory = 100000");
  PluginError e = plugin_error(*strict, 1);
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(std::string(e.what()).find("max-block-memory = 100000"), std::string::npos) << e.what();
}

TEST_F(FilePluginTest, ReaderWithoutGenesisFailsInit) {
  fs::remove(blocks_ / "genesis.json");
  EXPECT_THROW(reader(), PluginError);
}

TEST_F(FilePluginTest, ReaderFollowsAFileThatAppearsWhileWaiting) {
  auto importer = reader("missing-file-wait = \"600s\"");
  // Written elsewhere and renamed in, as file_writer (or any careful writer) does.
  std::thread producer([&] {
    fs::copy_file(fixtures_dir() / "2_block.msgp.gz", tmp_ / "staging");
    fs::rename(tmp_ / "staging", blocks_ / "2_block.msgp.gz");
  });
  BlockData block = importer->get_block(2, {});
  producer.join();
  EXPECT_EQ(block.encode_msgpack(), fixture_msgpack(2));
}

TEST_F(FilePluginTest, StopWakesAReaderWaitingForAFile) {
  auto importer = reader("missing-file-wait = \"600s\"");
  std::stop_source stop;
  std::thread stopper([&] { stop.request_stop(); });
  EXPECT_THROW(importer->get_block(2, stop.get_token()), Cancelled);
  stopper.join();
}

TEST_F(FilePluginTest, WriterWritesGenesisAndWholeFilesOnly) {
  copy_fixture(0);
  auto importer = reader();
  fs::create_directories(out_);
  write_text(out_ / ".conduit-tmp-0_block.msgp.gz.abc123", "left by a crash");
  auto exporter = writer("", 0);
  EXPECT_EQ(read_file(out_ / "genesis.json"), read_file(blocks_ / "genesis.json"));
  EXPECT_EQ(names(out_), (std::vector<std::string>{"genesis.json"}));  // stale temp removed

  BlockData block = importer->get_block(0, {});
  // A cancelled write leaves nothing behind, and the round can be written again.
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_THROW(exporter->receive(block, stopped.get_token()), Cancelled);
  EXPECT_EQ(names(out_), (std::vector<std::string>{"genesis.json"}));

  exporter->receive(block, {});
  EXPECT_EQ(names(out_), (std::vector<std::string>{"0_block.msgp.gz", "genesis.json"}));
  EXPECT_EQ(plugins::gzip_decompress(read_file(out_ / "0_block.msgp.gz"), 1 << 20),
            fixture_msgpack(0));
  // Rounds arrive in order; anything else is refused.
  try {
    exporter->receive(block, {});
    ADD_FAILURE() << "a repeated round was accepted";
  } catch (const PluginError& e) {
    EXPECT_FALSE(e.retryable());
  }
}

// Group commit: a unit's files appear together at commit_unit, never before;
// an abort or a cancelled commit leaves neither files nor temp files.
TEST_F(FilePluginTest, WriterUnitsAppearWholeAtCommitOrNotAtAll) {
  for (uint64_t r = 0; r < 6; ++r) copy_fixture(r);
  auto importer = reader();
  auto exporter = writer("", 0);
  ASSERT_TRUE(exporter->supports_units());
  std::vector<BlockData> blocks;
  for (uint64_t r = 0; r < 6; ++r) blocks.push_back(importer->get_block(r, {}));
  const std::vector<std::string> genesis_only{"genesis.json"};

  for (uint64_t r = 0; r < 3; ++r) exporter->stage(blocks[r], {});
  EXPECT_EQ(names(out_).size(), 4u);  // three temp files, nothing in place yet
  for (const auto& name : names(out_))
    EXPECT_TRUE(name == "genesis.json" || name.rfind(".conduit-tmp-", 0) == 0) << name;
  exporter->abort_unit();
  EXPECT_EQ(names(out_), genesis_only);

  for (uint64_t r = 0; r < 3; ++r) exporter->stage(blocks[r], {});
  std::stop_source stopped;
  stopped.request_stop();
  EXPECT_THROW(exporter->commit_unit(stopped.get_token()), Cancelled);
  EXPECT_EQ(names(out_), genesis_only);

  for (uint64_t r = 0; r < 3; ++r) exporter->stage(blocks[r], {});
  exporter->commit_unit({});
  EXPECT_EQ(names(out_), (std::vector<std::string>{"0_block.msgp.gz", "1_block.msgp.gz",
                                                   "2_block.msgp.gz", "genesis.json"}));
  // The next unit continues at round 3; a gap is refused and drops the unit.
  exporter->stage(blocks[3], {});
  EXPECT_THROW(exporter->stage(blocks[5], {}), PluginError);
  EXPECT_EQ(names(out_).size(), 4u);
  exporter->stage(blocks[3], {});
  exporter->stage(blocks[4], {});
  exporter->commit_unit({});
  for (uint64_t r = 0; r < 5; ++r) {
    std::string name = std::to_string(r) + "_block.msgp.gz";
    EXPECT_EQ(read_file(out_ / name), read_file(fixtures_dir() / name)) << name;
  }
}

// Overlap: prepare() (run on the thread before the exporter's) encodes and
// compresses a changed block; the exporter then writes those bytes as they are.
TEST_F(FilePluginTest, WriterWritesWhatPrepareEncoded) {
  copy_fixture(2);
  auto importer = reader();
  auto exporter = writer("", 2);
  BlockData block = importer->get_block(2, {});
  block.keep_payset_entries({0});
  ASSERT_EQ(block.encoded("msgp.gz"), nullptr);
  exporter->prepare(block);
  const std::string* prepared = block.encoded("msgp.gz");
  ASSERT_NE(prepared, nullptr);
  EXPECT_EQ(plugins::gzip_decompress(*prepared, 1 << 24), block.encode_msgpack());
  exporter->receive(block, {});
  EXPECT_EQ(read_file(out_ / "2_block.msgp.gz"), *prepared);
}

TEST_F(FilePluginTest, BadConfigurationIsRejectedWithItsLocation) {
  std::string error = error_of([&] { reader("filename-pattern = \"%[1]d_block.yaml\""); });
  EXPECT_NE(error.find("conduit.toml:"), std::string::npos) << error;
  EXPECT_NE(error.find("unrecognized export format"), std::string::npos) << error;
  write_text(data_ / "conduit.toml",
             "[importer]\nname = \"file_reader\"\n[exporter]\nname = \"noop\"\n");
  Config c = load_config(data_);
  error = error_of([&] { build_plugins(builtin_registry(), c); });
  EXPECT_NE(error.find("block-dir"), std::string::npos) << error;
}

namespace {
// Stops the pipeline (end-of-round) once `last` is exported.
class StopAfter : public Observer {
 public:
  explicit StopAfter(uint64_t last) : last_(last) {}
  Pipeline* pipeline = nullptr;
  void on_exported(uint64_t round, std::size_t) override {
    if (round == last_) pipeline->stop(StopMode::end_of_round, "test");
  }

 private:
  uint64_t last_;
};
}  // namespace

TEST_F(FilePluginTest, PipelineReproducesTheInputFilesThroughJsonAndBack) {
  for (uint64_t r = 0; r < kFixtureRounds; ++r) copy_fixture(r);
  auto run = [&](const std::string& importer_extra, const std::string& exporter_extra) {
    Config c = config(importer_extra, exporter_extra);
    StopAfter observer(kFixtureRounds - 1);
    PipelineOptions options{.data_dir = data_, .retry_count = 0, .retry_delay = {}};
    Pipeline pipeline(build_plugins(builtin_registry(), c), options, logger_, &observer);
    observer.pipeline = &pipeline;
    StopCause cause = pipeline.run();
    EXPECT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
    EXPECT_EQ(checkpoint_round(data_), kFixtureRounds);
  };

  // msgp.gz -> json
  run("missing-file-wait = \"600s\"", "filename-pattern = \"%[1]d_block.json\"");
  auto metadata = nlohmann::json::parse(read_file(data_ / "metadata.json"));
  EXPECT_EQ(metadata["network"], "generated-network");
  EXPECT_EQ(metadata["genesis-hash"],
            algorand::parse_genesis(read_file(fixtures_dir() / "genesis.json")).hash);
  EXPECT_EQ(read_file(out_ / "genesis.json"), read_file(blocks_ / "genesis.json"));

  // json -> msgp: the original bytes again.
  fs::remove_all(blocks_);
  fs::rename(out_, blocks_);
  fs::remove_all(data_);
  fs::create_directories(data_);
  run("filename-pattern = \"%[1]d_block.json\"\nmissing-file-wait = \"600s\"",
      "filename-pattern = \"%[1]d_block.msgp\"");
  for (uint64_t r = 0; r < kFixtureRounds; ++r)
    EXPECT_EQ(read_file(out_ / (std::to_string(r) + "_block.msgp")), fixture_msgpack(r))
        << "round " << r;
  for (const auto& name : names(out_)) EXPECT_EQ(name.find(".conduit-tmp-"), std::string::npos);
}

// Pass-through: unmodified blocks in the writer's format are written
// as read, byte for byte, with no gunzip/gzip round trip; a modified block is encoded.
TEST_F(FilePluginTest, UnmodifiedBlocksPassThroughByteIdentical) {
  for (uint64_t r = 0; r < kFixtureRounds; ++r) copy_fixture(r);
  // The fixtures come from Go's gzip; ours compresses differently, so equal
  // files can only be the bytes that were read.
  ASSERT_NE(plugins::gzip_compress(fixture_msgpack(1)),
            read_file(fixtures_dir() / "1_block.msgp.gz"));
  Config c = config("missing-file-wait = \"600s\"", "");
  StopAfter observer(kFixtureRounds - 1);
  PipelineOptions options{.data_dir = data_, .retry_count = 0, .retry_delay = {}};
  Pipeline pipeline(build_plugins(builtin_registry(), c), options, logger_, &observer);
  observer.pipeline = &pipeline;
  StopCause cause = pipeline.run();
  ASSERT_EQ(cause.reason, StopReason::stop_requested) << cause.detail;
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    std::string name = std::to_string(r) + "_block.msgp.gz";
    EXPECT_EQ(read_file(out_ / name), read_file(fixtures_dir() / name)) << name;
  }

  // A block changed after it was read is encoded afresh.
  auto importer = reader();
  BlockData block = importer->get_block(1, {});
  ASSERT_GT(block.txn_count(), 1u);
  block.keep_payset_entries({0});
  fs::remove_all(out_);
  auto exporter = writer("", 1);
  exporter->receive(block, {});
  BlockData written = BlockData::decode_msgpack(
      plugins::gzip_decompress(read_file(out_ / "1_block.msgp.gz"), 1 << 24));
  EXPECT_EQ(written.txn_count(), 1u);
  EXPECT_EQ(written.encode_msgpack(), block.encode_msgpack());
}

TEST_F(FilePluginTest, RestartOnAnotherNetworkIsRefused) {
  copy_fixture(0);
  Checkpoint(data_).store({"c29tZS1vdGhlci1oYXNo", "othernet", 0});
  Config c = config("", "");
  PipelineOptions options{.data_dir = data_, .retry_count = 1, .retry_delay = {}};
  Pipeline pipeline(build_plugins(builtin_registry(), c), options, logger_);
  StopCause cause = pipeline.run();
  EXPECT_EQ(cause.reason, StopReason::checkpoint_error);
  EXPECT_NE(cause.detail.find("othernet"), std::string::npos) << cause.detail;
  auto metadata = nlohmann::json::parse(read_file(data_ / "metadata.json"));
  EXPECT_EQ(metadata["network"], "othernet");
  EXPECT_FALSE(fs::exists(out_ / "0_block.msgp.gz"));
}

// --- accessors ---------------------------------------------------------------------

TEST(BlockAccessors, ReadTransactionsGroupsAndInnerTransactions) {
  CONDUIT_REQUIRE_FIXTURES();
  size_t grouped = 0, inner = 0, total = 0;
  for (uint64_t r = 0; r < kFixtureRounds; ++r) {
    BlockData block = BlockData::decode_msgpack(fixture_msgpack(r));
    EXPECT_EQ(block.header()["rnd"].as_uint().value_or(0), r);
    EXPECT_EQ(block.header().path("gen").as_string(), "blockgen-test") << r;
    for (size_t i = 0; i < block.txn_count(); ++i) {
      FieldView stxn = block.payset_entry(i);
      ASSERT_TRUE(stxn.present());
      auto type = txn_of(stxn)["type"].as_string();
      ASSERT_TRUE(type.has_value());
      EXPECT_TRUE(*type == "pay" || *type == "axfer" || *type == "appl" || *type == "acfg")
          << *type;
      EXPECT_EQ(txn_of(stxn)["snd"].as_bytes()->size(), 32u);
      if (auto grp = group_id(stxn)) {
        EXPECT_EQ(grp->size(), 32u);
        ++grouped;
      }
      FieldView itx = inner_txns(stxn);
      for (size_t k = 0; k < itx.size(); ++k) {
        EXPECT_EQ(txn_of(itx.at(k))["type"].as_string(), "pay");
        ++inner;
      }
      ++total;
    }
    EXPECT_FALSE(block.payset_entry(block.txn_count()).present());
  }
  EXPECT_GT(total, 0u);
  EXPECT_GT(grouped, 0u);
  EXPECT_GT(inner, 0u);
  EXPECT_FALSE(FieldView().path("a.b").present());
  EXPECT_EQ(FieldView().as_uint(), std::nullopt);
}

TEST(BlockAccessors, EncodedBytesLastUntilTheBlockChanges) {
  CONDUIT_REQUIRE_FIXTURES();
  BlockData block = BlockData::decode_msgpack(fixture_msgpack(1));
  EXPECT_EQ(block.encoded("msgp"), nullptr);
  block.set_encoded("msgp", fixture_msgpack(1));
  ASSERT_NE(block.encoded("msgp"), nullptr);
  EXPECT_EQ(*block.encoded("msgp"), fixture_msgpack(1));
  EXPECT_EQ(block.encoded("msgp.gz"), nullptr);  // another format
  const BlockData& reader = block;
  (void)reader.tree();  // reading leaves them
  EXPECT_NE(block.encoded("msgp"), nullptr);
  BlockData copy = block.clone();
  EXPECT_NE(copy.encoded("msgp"), nullptr);
  block.keep_payset_entries({0});
  EXPECT_EQ(block.encoded("msgp"), nullptr);
  EXPECT_NE(copy.encoded("msgp"), nullptr);  // the copy is still unmodified
  (void)copy.tree();                         // mutable access: may change it
  EXPECT_EQ(copy.encoded("msgp"), nullptr);
}

// Memory budgets (the exporter queue, group-commit-bytes) count what an
// exporter's prepare() keeps with a block, such as the postgresql exporter's rows.
TEST(BlockAccessors, SizeHintCountsTheBytesKeptWithTheBlock) {
  CONDUIT_REQUIRE_FIXTURES();
  BlockData block = BlockData::decode_msgpack(fixture_msgpack(1));
  const size_t bare = block.size_hint();
  EXPECT_EQ(bare, block.memory_cost());  // the decoded tree, not the bytes
  block.set_encoded("postgresql-rows", std::string(100000, 'r'));
  EXPECT_EQ(block.size_hint(), bare + 100000);
  (void)block.tree();  // mutable access drops them
  EXPECT_EQ(block.size_hint(), bare);
}

TEST(BlockAccessors, KeepPaysetEntriesDropsTheOthers) {
  CONDUIT_REQUIRE_FIXTURES();
  BlockData block = BlockData::decode_msgpack(fixture_msgpack(1));
  ASSERT_GT(block.txn_count(), 3u);
  BlockData original = block.clone();
  std::string sig0(*block.payset_entry(0)["sig"].as_bytes());
  std::string sig2(*block.payset_entry(2)["sig"].as_bytes());
  EXPECT_THROW(block.keep_payset_entries({2, 1}), std::out_of_range);
  EXPECT_THROW(block.keep_payset_entries({0, 100000}), std::out_of_range);
  EXPECT_EQ(block.encode_msgpack(), original.encode_msgpack());  // unchanged after a refusal
  block.keep_payset_entries({0, 2});
  EXPECT_EQ(block.txn_count(), 2u);
  BlockData reread = BlockData::decode_msgpack(block.encode_msgpack());
  EXPECT_EQ(reread.payset_entry(0)["sig"].as_bytes(), sig0);
  EXPECT_EQ(reread.payset_entry(1)["sig"].as_bytes(), sig2);
  block.keep_payset_entries({});
  EXPECT_EQ(block.txn_count(), 0u);
  EXPECT_FALSE(block.root()["payset"].present());
  EXPECT_TRUE(block.root()["delta"].present());
}

// compact() keeps a block as msgpack until something looks at it again: the
// same block afterwards, edits included, and the bytes kept with it stay.
TEST(BlockAccessors, ACompactedBlockIsTheSameBlock) {
  CONDUIT_REQUIRE_FIXTURES();
  const std::string bytes = fixture_msgpack(1);
  BlockData block = BlockData::decode_msgpack(bytes);
  std::string sig2(*block.payset_entry(2)["sig"].as_bytes());  // the tree is built
  const size_t txns = block.txn_count(), hint = block.size_hint();
  block.set_encoded("rows", "prepared");
  block.compact();
  EXPECT_EQ(block.round(), 1u);
  EXPECT_EQ(block.txn_count(), txns);
  EXPECT_EQ(block.size_hint(), hint + 8) << "budgets count the block as decoded";
  ASSERT_NE(block.encoded("rows"), nullptr);
  EXPECT_EQ(block.payset_entry(2)["sig"].as_bytes(), sig2);  // built again
  EXPECT_EQ(block.encode_msgpack(), bytes);

  block.keep_payset_entries({0, 2});  // an edited block compacts to its edit
  std::string edited = block.encode_msgpack();
  block.compact();
  EXPECT_EQ(block.txn_count(), 2u);
  EXPECT_EQ(block.payset_entry(1)["sig"].as_bytes(), sig2);
  EXPECT_EQ(block.encode_msgpack(), edited);

  BlockData changed = BlockData::decode_msgpack(bytes);
  auto* rnd = mp::find(*mp::find(changed.tree().root, "block"), "rnd");
  rnd->via.u64 = 77;
  changed.compact();
  EXPECT_EQ(changed.header()["rnd"].as_uint(), 77u) << "a tree changed in place compacts to itself";
}

TEST(BlockCodec, UnknownFieldsKeepTheirJsonTypes) {
  std::string json = R"({"block": {"rnd": 2}, "x": {"f": 1.5, "g": 100.0, "n": -3, "s": "text", )"
                     R"("b": true, "z": null, "a": [1, "two", []], "e": {}}})";
  BlockData block = decode_block_json(json);
  EXPECT_EQ(block.round(), 2u);
  FieldView x = block.root()["x"];
  EXPECT_EQ(x["f"].as_double(), 1.5);
  EXPECT_EQ(x["g"].as_double(), 100.0);
  EXPECT_EQ(x["n"].as_int(), -3);
  EXPECT_EQ(x["s"].as_string(), "text");
  EXPECT_EQ(x["b"].as_bool(), true);
  EXPECT_EQ(x["z"].type(), FieldView::Type::nil);
  EXPECT_EQ(x["a"].size(), 3u);
  EXPECT_EQ(x["e"].type(), FieldView::Type::map);
  BlockData again = decode_block_json(encode_block_json(block));
  EXPECT_EQ(again.encode_msgpack(), block.encode_msgpack());
}

namespace {

// Keys of mixed kinds where Go has only one (found by the fuzzer): integer
// keys in a struct's map are written as text and read back as strings, so
// they are ordered by that text; in a map of integer keys a string spelling
// an integer reads back as that integer, so it is ordered by its value. Either
// way the JSON read back writes the same bytes.
TEST(BlockJsonKeyOrder, MixedKeyKindsOrderAsTheyReadBack) {
  BlockData block = block_from([](auto& p) {
    p.pack_map(1);
    p.pack("block");
    p.pack_map(5);
    p.pack(107);
    p.pack(1);
    p.pack("3x");
    p.pack(2);
    p.pack(3);
    p.pack(3);
    p.pack("gen");
    p.pack("g");
    p.pack("spt");  // a map with integer keys
    p.pack_map(2);
    p.pack(7);
    p.pack_map(0);
    p.pack("5");
    p.pack_map(0);
  });
  std::string json = encode_block_json(block);
  std::string compact = json;
  std::erase_if(compact, [](char c) { return c == ' ' || c == '\n'; });
  EXPECT_NE(compact.find(R"("107":1,"3":3,"3x":2,"gen":"g","spt":{"5":{},"7":{}})"),
            std::string::npos)
      << json;
  EXPECT_EQ(encode_block_json(decode_block_json(json)), json);
}

}  // namespace
