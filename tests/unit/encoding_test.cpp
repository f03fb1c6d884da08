// The shared encodings against Go's rules: unicode/utf8's decoding (the cases
// of its utf8_test.go), go-codec's JSON quoting, and what PostgreSQL's jsonb
// and TOML need of a quoted string.
#include "core/encoding.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "plugins/postgresql/postgresql.hpp"

namespace {

using namespace conduit;
using encoding::Quoting;

std::vector<char32_t> decode_all(std::string_view text) {
  std::vector<char32_t> out;
  for (size_t at = 0; at < text.size();) out.push_back(encoding::decode_utf8(text, at));
  return out;
}

std::string json_quoted(std::string_view text, const Quoting& how = {}) {
  std::string out;
  encoding::append_quoted(out, text, how);
  return out;
}

TEST(Utf8, WellFormedSequencesAtEveryLength) {
  EXPECT_EQ(decode_all("a\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80"),
            (std::vector<char32_t>{U'a', 0x80, 0x800, 0x10000}));
  EXPECT_EQ(decode_all("\xdf\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf"),
            (std::vector<char32_t>{0x7ff, 0xffff, 0x10ffff}));
}

// Each byte that starts no valid sequence is one U+FFFD of width one, as
// utf8.DecodeRuneInString returns (RuneError, 1).
TEST(Utf8, IllFormedBytesDecodeOneReplacementEach) {
  const std::vector<std::string> ill_formed = {
      "\x80",              // stray continuation
      "\xc0\x80",          // overlong NUL
      "\xc1\xbf",          // overlong
      "\xe0\x9f\xbf",      // overlong three-byte
      "\xed\xa0\x80",      // surrogate U+D800
      "\xf0\x8f\xbf\xbf",  // overlong four-byte
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xf5\x80\x80",      // lead bytes F5-FF never start a sequence
      "\xf8\x88\x80\x80\x80",
      "\xff",
      "\xe2\x82",  // cut short
  };
  for (const auto& text : ill_formed) {
    EXPECT_EQ(encoding::utf8_sequence_length(text, 0), 0u) << testing::PrintToString(text);
    std::vector<char32_t> replacements(text.size(), U'\ufffd');
    EXPECT_EQ(decode_all(text), replacements) << testing::PrintToString(text);
  }
}

TEST(Utf8, AppendWritesEachLength) {
  std::string out;
  for (char32_t cp : {U'a', char32_t{0x7ff}, char32_t{0xfffd}, char32_t{0x10ffff}})
    encoding::append_utf8(out, cp);
  EXPECT_EQ(out, "a\xdf\xbf\xef\xbf\xbd\xf4\x8f\xbf\xbf");
}

// go-codec (HTMLCharsAsIs): short escapes, other controls as \u00XX, U+2028
// and U+2029 escaped, invalid bytes as \ufffd, everything else as is.
TEST(Quoting, GoCodecByDefault) {
  EXPECT_EQ(json_quoted("a\"b\\c\n\r\t\b\f"), R"("a\"b\\c\n\r\t\b\f")");
  EXPECT_EQ(json_quoted(std::string("\x01\x1f\0<>&\x7f", 7)), "\"\\u0001\\u001f\\u0000<>&\x7f\"");
  EXPECT_EQ(json_quoted("\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xaa"), "\"\\u2028\\u2029\xe2\x80\xaa\"");
  EXPECT_EQ(json_quoted("\xf5\x80 \xc3\xa9"), "\"\\ufffd\\ufffd \xc3\xa9\"");
}

TEST(Quoting, LowSurrogatesKeepTheBytes) {
  EXPECT_EQ(json_quoted("x\xff\x80", {.invalid = Quoting::Invalid::escape_low_surrogate}),
            R"("x\udcff\udc80")");
}

// jsonb refuses \u0000 and text that is not UTF-8: both become U+FFFD.
TEST(Quoting, PostgresqlJsonbString) {
  std::string out;
  plugins::pg::append_json_string(std::string("a\0\xf5\x80\x80", 5), out);
  EXPECT_EQ(out, "\"a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

// Indexer's util.PrintableUTF8OrEmpty: a lead byte F5-FF makes text unprintable.
TEST(Quoting, PrintableUtf8RejectsWhatGoRejects) {
  EXPECT_TRUE(plugins::pg::printable_utf8("caf\xc3\xa9"));
  EXPECT_FALSE(plugins::pg::printable_utf8("\xf5\x80\x80"));
  EXPECT_FALSE(plugins::pg::printable_utf8("\xed\xa0\x80"));
}

TEST(Quoting, TomlEscapesDelete) {
  EXPECT_EQ(json_quoted("a\x7f\xff", {.invalid = Quoting::Invalid::replacement, .escape_delete = true}),
            "\"a\\u007f\xef\xbf\xbd\"");
}

}  // namespace
