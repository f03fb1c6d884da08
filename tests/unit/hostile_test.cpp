// Issue 14 (hostile input, failing disks), in-process: the configuration
// reader's bounds, the checkpoint reader's strictness and metadata.json's format.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include "core/checkpoint.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "test_support.hpp"

using namespace conduit;

namespace {

const char* kMinimal = "[importer]\nname = \"noop\"\n[exporter]\nname = \"noop\"\n";

std::string config_error(const std::string& text) {
  try {
    parse_config(text, "/data", "/data/conduit.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::string repeat(const std::string& unit, size_t n, const std::string& separator = "") {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i ? separator : "") + unit;
  return out;
}

}  // namespace

// Item 1: each of these overflowed the stack inside toml++ (SIGSEGV) on main.
struct DeepInput {
  const char* name;
  std::string text;
  std::string location;  // where the refusal points
};

class DeepConfig : public ::testing::TestWithParam<DeepInput> {};

TEST_P(DeepConfig, IsRefusedWithFileLineColumnBeforeTheParser) {
  std::string error = config_error(GetParam().text);
  EXPECT_NE(error.find(GetParam().location), std::string::npos) << error.substr(0, 300);
  EXPECT_NE(error.find("nested more than 64 levels deep"), std::string::npos)
      << error.substr(0, 300);
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, DeepConfig,
    ::testing::Values(
        DeepInput{"table_header", "[" + repeat("a", 50000, ".") + "]\n",
                  "/data/conduit.toml:1:129:"},
        DeepInput{"array_of_tables",
                  std::string(kMinimal) + "[[" + repeat("a", 50000, ".") + "]]\n",
                  "/data/conduit.toml:5:"},
        DeepInput{"dotted_key", repeat("a", 50000, ".") + " = 1\n", "/data/conduit.toml:1:128:"},
        DeepInput{"quoted_dotted_key", repeat("\"a\"", 50000, ".") + " = 1\n",
                  "/data/conduit.toml:1:"},
        DeepInput{"inline_tables", "x = " + repeat("{a=", 50000) + "1" + repeat("}", 50000) + "\n",
                  "/data/conduit.toml:1:"},
        DeepInput{"dotted_key_in_inline_table", "x = {" + repeat("a", 50000, ".") + " = 1}\n",
                  "/data/conduit.toml:1:"},
        DeepInput{"arrays", "x = " + std::string(50000, '[') + std::string(50000, ']') + "\n",
                  "/data/conduit.toml:1:"},
        // A multi-line string ending in extra quotes must not hide what follows from the scan.
        DeepInput{"after_multiline_quotes",
                  "x = ['''a'''', {" + repeat("a", 50000, ".") + " = 1}]\n",
                  "/data/conduit.toml:1:"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ConfigLimits, OrdinaryNestingIsAccepted) {
  // The deepest shape a real configuration has: filters in a processor.
  std::string text = std::string(kMinimal) + R"(
[[processors]]
name = "noop"
[processors.config]
[[processors.config.filters]]
any = [ { tag = "txn.type", expression-type = "equal", expression = "pay" } ]
s = """ "[" ''' """
t = '''x[{'''
)";
  std::string error = config_error(text);
  EXPECT_EQ(error.find("nested"), std::string::npos) << error;
}

TEST(ConfigLimits, AnOversizedFileIsRefused) {
  std::string text = std::string(kMinimal) + "# " + std::string(kMaxConfigBytes, 'x') + "\n";
  EXPECT_NE(config_error(text).find("/data/conduit.toml: 1048"), std::string::npos)
      << config_error(text).substr(0, 200);
  test::TempDir dir;
  test::write_text(dir / "conduit.toml", text);
  try {
    load_config(dir.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("at most 1048576"), std::string::npos) << e.what();
  }
}

// Item 11: the real cause, not "conduit.toml:1:1: : missing [importer] section".
TEST(ConfigLimits, ADirectoryNamedConduitTomlSaysSo) {
  test::TempDir dir;
  std::filesystem::create_directory(dir / "conduit.toml");
  try {
    load_config(dir.path());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("conduit.toml: cannot read the configuration: Is a "
                                         "directory"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(config_error("[exporter]\nname = \"noop\"\n").find(": : "), std::string::npos);
}

// Item 4: only a JSON integer in [0, 2^64-1] is a round; the file is left as it was.
class CorruptCheckpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(CorruptCheckpoint, IsACheckpointErrorAndTheFileIsUntouched) {
  test::TempDir dir;
  std::string text = "{\"genesis-hash\":\"\",\"network\":\"\",\"next-round\":" + GetParam() + "}\n";
  test::write_text(dir / "metadata.json", text);
  try {
    auto m = Checkpoint(dir.path()).load();
    FAIL() << GetParam() << " was read as round " << (m ? std::to_string(m->next_round) : "none");
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("next-round"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test::read_text(dir / "metadata.json"), text);
}

INSTANTIATE_TEST_SUITE_P(Values, CorruptCheckpoint,
                         ::testing::Values("1e30", "18446744073709551616", "3.7", "-1", "\"5\"",
                                           "null", "true", "1.0", "99999999999999999999999"));

TEST(Checkpoint, TheLargestRoundIsARound) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json", "{\"next-round\":18446744073709551615}");
  auto m = Checkpoint(dir.path()).load();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->next_round, UINT64_MAX);
  test::write_text(dir / "metadata.json", "[1]");
  EXPECT_THROW(Checkpoint(dir.path()).load(), CheckpointError);
}

// Item 9: an error other than "no such file" is not a first run.
TEST(Checkpoint, AnUnreadableFileIsNotAFirstRun) {
  test::TempDir dir;
  // ELOOP reaches root too (root ignores permission bits).
  std::filesystem::create_symlink("metadata.json", dir / "metadata.json");
  try {
    Checkpoint(dir.path()).load();
    FAIL() << "a symlink loop was read as a first run";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("metadata.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir / "metadata.json");
  test::write_text(dir / "metadata.json", "{\"next-round\":5}");
  if (::geteuid() != 0) {
    ::chmod((dir / "metadata.json").c_str(), 0);
    EXPECT_THROW(Checkpoint(dir.path()).load(), CheckpointError);
  }
}

TEST(Checkpoint, AnInjectedReadErrorIsACheckpointError) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json", "{\"next-round\":5}");
  FaultInjection faults([](FsOp op, const std::filesystem::path& path) {
    return op == FsOp::open && path.filename() == "metadata.json" ? EIO : 0;
  });
  try {
    Checkpoint(dir.path()).load();
    FAIL() << "EIO was read as a first run";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("Input/output error"), std::string::npos) << e.what();
  }
}

// Item 12: as Go Conduit, a 0-byte file counts as absent (the caller warns).
TEST(Checkpoint, AnEmptyFileCountsAsAbsent) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json", "");
  Checkpoint checkpoint(dir.path());
  EXPECT_FALSE(checkpoint.load());
  EXPECT_TRUE(checkpoint.ignored_empty_file());
}

// Issue 15: compact JSON as Go's json.Encoder writes it, unknown keys kept.
TEST(Checkpoint, WritesCompactJsonAndKeepsUnknownKeys) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json",
                   "{\n  \"genesis-hash\": \"aGFzaA==\",\n  \"network\": \"mainnet\",\n"
                   "  \"next-round\": 7,\n  \"telemetry-id\": \"abc-123\",\n"
                   "  \"x-extra\": {\"n\": [1, 2]}\n}\n");
  Checkpoint checkpoint(dir.path());
  auto m = checkpoint.load();
  ASSERT_TRUE(m);
  m->next_round = 8;
  checkpoint.store(*m);
  EXPECT_EQ(test::read_text(dir / "metadata.json"),
            "{\"genesis-hash\":\"aGFzaA==\",\"network\":\"mainnet\",\"next-round\":8,"
            "\"telemetry-id\":\"abc-123\",\"x-extra\":{\"n\":[1,2]}}\n");
  test::TempDir other;
  Checkpoint(other.path()).store({"h", "n", 1});
  EXPECT_EQ(test::read_text(other / "metadata.json"),
            "{\"genesis-hash\":\"h\",\"network\":\"n\",\"next-round\":1}\n");
}
