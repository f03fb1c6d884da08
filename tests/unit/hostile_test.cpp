// Hostile input and failing disks, in-process: the configuration
// reader's bounds, the checkpoint reader's strictness and metadata.json's format.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>

#include "core/checkpoint.hpp"
#include "core/config.hpp"
#include "core/fs.hpp"
#include "core/pipeline.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "plugins/files/block_files.hpp"
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

// Compact JSON as Go's json.Encoder writes it, unknown keys kept.
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

// Item 8 and "Also": failures injected into the file layer. After each one the
// checkpoint names no round whose file is not in place, and a restart leaves
// every round's file exactly once.
namespace {

namespace fs = std::filesystem;

class StopAfter : public Observer {
 public:
  explicit StopAfter(uint64_t last) : last_(last) {}
  Pipeline* pipeline = nullptr;
  void on_exported(uint64_t round, std::size_t) override {
    // >=: group commit may have drained past `last` before a restart.
    if (round >= last_ && !stopped_.exchange(true)) pipeline->stop(StopMode::end_of_round, "test");
  }

 private:
  uint64_t last_;
  std::atomic<bool> stopped_{false};
};

struct FaultCase {
  const char* name;
  FsOp op;
  std::function<bool(const fs::path& path, const fs::path& data, const fs::path& out)> matches;
  int nth;     // fail the nth matching call
  int error;   // with this errno
  bool fatal;  // the pipeline must stop (not retry)
};

class FaultyDisk : public ::testing::TestWithParam<FaultCase> {
 protected:
  StopCause run(uint64_t last) {
    std::string text =
        "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = 1\n"
        "[exporter]\nname = \"file_writer\"\n[exporter.config]\nblock-dir = \"" +
        out_.string() + "\"\nfilename-pattern = \"%[1]d_block.json\"\n";
    Config config = parse_config(text, data_, "conduit.toml");
    StopAfter observer(last);
    // One round per commit: the faults are counted per round's file (group
    // commit has its own tests, group_commit_test.cpp).
    PipelineOptions options{
        .data_dir = data_, .retry_count = 1, .retry_delay = {}, .unit_max_rounds = 1};
    Pipeline pipeline(build_plugins(builtin_registry(), config), options, logger_, &observer);
    observer.pipeline = &pipeline;
    return pipeline.run();
  }
  std::set<std::string> files() const {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(out_))
      names.insert(entry.path().filename().string());
    return names;
  }

  test::TempDir dir_;
  fs::path data_ = dir_.path();
  fs::path out_ = dir_ / "out";
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_P(FaultyDisk, TheCheckpointNeverPassesDataThatIsNotDurableAndARestartHeals) {
  const auto& fault = GetParam();
  std::atomic<int> seen{0};
  std::atomic<bool> injected{false};
  StopCause cause;
  {
    FaultInjection faults([&](FsOp op, const fs::path& path) {
      if (op != fault.op || !fault.matches(path, data_, out_)) return 0;
      if (++seen != fault.nth) return 0;
      injected = true;
      return fault.error;
    });
    cause = run(8);
  }
  ASSERT_TRUE(injected) << "the fault never fired";
  if (fault.fatal) {
    EXPECT_NE(cause.reason, StopReason::stop_requested) << cause.detail;
    EXPECT_NE(cause.detail.find(std::strerror(fault.error)), std::string::npos) << cause.detail;
  }
  auto next = test::checkpoint_round(data_);
  uint64_t committed = next.value_or(0);
  for (uint64_t r = 0; r < committed; ++r)
    EXPECT_TRUE(fs::exists(out_ / (std::to_string(r) + "_block.json")))
        << "the checkpoint says " << committed << " but round " << r << " has no file";

  // A restart without faults: every round once, no temp file, the checkpoint after the last.
  StopCause again = run(12);
  EXPECT_EQ(again.reason, StopReason::stop_requested) << again.detail;
  // An end-of-round stop also exports the rounds already delivered after 12.
  uint64_t last = test::checkpoint_round(data_).value_or(0);
  EXPECT_GE(last, 13u);
  std::set<std::string> expected{"genesis.json"};
  for (uint64_t r = 0; r < last; ++r) expected.insert(std::to_string(r) + "_block.json");
  EXPECT_EQ(files(), expected);
}

namespace {
bool in_out_temp(const fs::path& p, const fs::path&, const fs::path& out) {
  return p.parent_path() == out && p.filename().string().rfind(".conduit-tmp-", 0) == 0;
}
bool is_out_dir(const fs::path& p, const fs::path&, const fs::path& out) {
  return p == out;
}
bool is_out_block(const fs::path& p, const fs::path&, const fs::path& out) {
  return p.parent_path() == out && p.filename() != "genesis.json";
}
bool metadata_temp(const fs::path& p, const fs::path& data, const fs::path&) {
  return p == data / "metadata.json.tmp";
}
bool metadata_file(const fs::path& p, const fs::path& data, const fs::path&) {
  return p == data / "metadata.json";
}
bool is_data_dir(const fs::path& p, const fs::path& data, const fs::path&) {
  return p == data;
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Faults, FaultyDisk,
    ::testing::Values(
        FaultCase{"block_write_enospc", FsOp::write, in_out_temp, 4, ENOSPC, false},
        FaultCase{"block_fsync_eio", FsOp::fsync, in_out_temp, 4, EIO, true},
        FaultCase{"block_rename_eio", FsOp::rename, is_out_block, 4, EIO, false},
        FaultCase{"block_dir_open_eacces", FsOp::open, is_out_dir, 4, EACCES, true},
        FaultCase{"block_dir_fsync_eio", FsOp::fsync, is_out_dir, 4, EIO, true},
        FaultCase{"checkpoint_write_enospc", FsOp::write, metadata_temp, 4, ENOSPC, true},
        FaultCase{"checkpoint_fsync_eio", FsOp::fsync, metadata_temp, 4, EIO, true},
        FaultCase{"checkpoint_rename_eio", FsOp::rename, metadata_file, 4, EIO, true},
        FaultCase{"checkpoint_dir_fsync_eio", FsOp::fsync, is_data_dir, 4, EIO, true}),
    [](const auto& info) { return std::string(info.param.name); });

// Item 8: main ignored a failed fsync of the block directory and moved the
// checkpoint past the round.
TEST(FaultyDiskFileWriter, AFailedDirectoryFsyncKeepsTheCheckpointAtThatRound) {
  test::TempDir dir;
  fs::path out = dir / "out";
  std::string text =
      "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = 1\n"
      "[exporter]\nname = \"file_writer\"\n[exporter.config]\nblock-dir = \"" +
      out.string() + "\"\nfilename-pattern = \"%[1]d_block.json\"\n";
  Config config = parse_config(text, dir.path(), "conduit.toml");
  Logger logger{nullptr, LogLevel::error};
  StopAfter observer(20);
  // One round per commit, so that the checkpoint can stop exactly at round 3.
  PipelineOptions options{
      .data_dir = dir.path(), .retry_count = 3, .retry_delay = {}, .unit_max_rounds = 1};
  Pipeline pipeline(build_plugins(builtin_registry(), config), options, logger, &observer);
  observer.pipeline = &pipeline;
  FaultInjection faults([&](FsOp op, const fs::path& path) {
    return op == FsOp::fsync && path == out && fs::exists(out / "3_block.json") ? EIO : 0;
  });
  StopCause cause = pipeline.run();
  EXPECT_EQ(cause.reason, StopReason::exporter_error) << cause.detail;
  EXPECT_NE(cause.detail.find("fsync " + out.string() + ": Input/output error"), std::string::npos)
      << cause.detail;
  EXPECT_EQ(test::checkpoint_round(dir.path()), 3u);
}

// Item 7: accepted at configuration on main, failing at run time (ENAMETOOLONG).
TEST(HostilePattern, AnAbsurdWidthIsRefusedAtConfiguration) {
  using plugins::FilenamePattern;
  for (std::string pattern :
       {std::string("%[1]05000d.msgp"), std::string("%[1]99999999999999999999999999d.msgp"),
        std::string("%[1]065d_block.json"), std::string(240, 'x') + "%[1]d.json"})
    EXPECT_THROW(FilenamePattern::parse(pattern), std::invalid_argument) << pattern;
  EXPECT_EQ(FilenamePattern::parse("%[1]064d.json").format(7).size(), 69u);
  EXPECT_EQ(FilenamePattern::parse("%[1]d_block.msgp.gz").format(12), "12_block.msgp.gz");

  test::TempDir dir;
  Config config = parse_config(
      "[importer]\nname = \"noop\"\n[exporter]\nname = \"file_writer\"\n[exporter.config]\n"
      "filename-pattern = \"%[1]05000d.msgp\"\n",
      dir.path(), "conduit.toml");
  try {
    build_plugins(builtin_registry(), config);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("conduit.toml:6:20: exporter.config.filename-pattern: "
                                         "filename-pattern '%[1]05000d.msgp': width 5000"),
              std::string::npos)
        << e.what();
  }
}

// Item 11: a block whose rnd is not an integer said "holds round 0".
TEST(HostileMessages, ABlockWithANonIntegerRoundSaysSo) {
  using plugins::FilenamePattern;
  for (std::string text :
       {R"({"block": {"rnd": "x"}})", R"({"block": {"rnd": 1.5}})", R"({"block": {"rnd": -3}})",
        R"({"block": {"rnd": true}})", R"({"block": {"rnd": null}})", R"({"block": {"rnd": {}}})",
        R"({"block": {"rnd": 1e3}})"}) {
    try {
      auto block = plugins::decode_block_file(text, FilenamePattern::parse("%[1]d_block.json"));
      ADD_FAILURE() << text << " decoded as round " << block.round();
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("rnd"), std::string::npos) << text << ": " << e.what();
    }
  }
}

// Unknown keys are written back, and writing JSON recurses: a deep one is refused.
TEST(Checkpoint, DeeplyNestedUnknownKeysAreRefused) {
  test::TempDir dir;
  test::write_text(dir / "metadata.json", "{\"next-round\":1,\"x\":" + std::string(100000, '[') +
                                              std::string(100000, ']') + "}");
  try {
    Checkpoint(dir.path()).load();
    FAIL() << "accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("nested more than 64 levels deep"), std::string::npos)
        << e.what();
  }
  Metadata m = parse_metadata("{\"next-round\":3,\"s\":\"[[[[\\\"[[\"}", "m");
  EXPECT_EQ(m.next_round, 3u);
}
