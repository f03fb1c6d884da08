// file_reader and file_writer, compatible with Go Conduit's plugins of the same
// names: same keys, same file names and encodings, genesis.json in the block dir.
#include "plugins/files/file_plugins.hpp"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/algorand.hpp"
#include "core/fs.hpp"
#include "plugins/files/block_files.hpp"

namespace conduit::plugins {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultPattern = "%[1]d_block.msgp.gz";
constexpr const char* kGenesisFile = "genesis.json";
constexpr const char* kTempPrefix = ".conduit-tmp-";

constexpr const char* kReaderSample =
    R"(# directory holding the block files and genesis.json (required)
block-dir = "/var/lib/conduit/blocks"
# file names, Go fmt style: .msgp or .json, optionally .gz
filename-pattern = "%[1]d_block.msgp.gz"
# conduit only: how long one fetch waits for a missing file to appear before
# reporting a retryable error (the pipeline then retries per retry-count)
missing-file-wait = "1s"
# conduit only: largest block file accepted, in bytes, before and after gzip
# decompression (a gzip bomb is refused with this error, memory stays bounded)
max-block-bytes = 268435456
# conduit only: largest memory one decoded block may take, in bytes (a value
# takes 24 bytes however few bytes encode it; real blocks need a small fraction)
max-block-memory = 268435456
)";

constexpr const char* kWriterSample = R"(# directory for the block files; created if missing.
# Default: the plugin's data dir, DIR/exporter_file_writer/
# block-dir = "/var/lib/conduit/out"
# file names, Go fmt style: .msgp or .json, optionally .gz
filename-pattern = "%[1]d_block.msgp.gz"
# remove the vote certificate before writing
drop-certificate = false
# conduit only, .json files: addresses as Go writes them ("base64") or as
# checksummed "base32" addresses for people reading the files
json-addresses = "base64"
# conduit only, .json files: bytes of a string that are not UTF-8 as "escape"
# (lone surrogates \udc80..\udcff, read back exactly) or "replace" (Go's \ufffd)
json-invalid-utf8 = "escape"
)";

FilenamePattern configure_pattern(PluginConfig& config) {
  std::string text = config.get_string("filename-pattern", kDefaultPattern);
  if (text.empty()) text = kDefaultPattern;  // Go: empty means the default
  try {
    return FilenamePattern::parse(text);
  } catch (const std::invalid_argument& e) {
    config.fail("filename-pattern", e.what());
  }
}

// The whole file, or nullopt when it does not exist.
std::optional<std::string> read_if_exists(const fs::path& path, size_t limit = kMaxBlockFileBytes) {
  // A FIFO in the block directory is refused, not waited on: a blocked open()
  // would not see the stop token.
  RegularFile file = open_regular_file(path);
  if (!file) {
    if (file.open_errno == ENOENT) return std::nullopt;
    throw PluginError("cannot open " + path.string() + ": " + file.error, false);
  }
  std::string data;
  struct stat st {};
  if (::fstat(file.fd.get(), &st) == 0 && st.st_size > 0)
    data.reserve(std::min(static_cast<size_t>(st.st_size), limit));
  if (int error = read_at_most(file.fd.get(), limit, data))
    throw PluginError("cannot read " + path.string() + ": " + std::strerror(error), false);
  if (data.size() > limit)
    throw PluginError(path.string() + " is larger than " + std::to_string(limit) +
                          " bytes (file_reader's max-block-bytes)",
                      false);
  return data;
}

// Wakes a poll() when the stop token fires.
class StopWaker {
 public:
  explicit StopWaker(std::stop_token stop)
      : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), callback_(stop, [this] { wake(); }) {}
  int fd() const { return fd_.get(); }

 private:
  void wake() {
    uint64_t one = 1;
    if (fd_) [[maybe_unused]]
      auto n = ::write(fd_.get(), &one, sizeof(one));
  }
  UniqueFd fd_;
  std::stop_callback<std::function<void()>> callback_;
};

class FileReader final : public Importer {
 public:
  void configure(PluginConfig& config) override {
    auto dir = config.get_string("block-dir", "");
    if (dir.empty())
      config.fail("block-dir", "block-dir is required: the directory of the block files");
    block_dir_ = dir;
    pattern_ = configure_pattern(config);
    wait_ = config.get_duration("missing-file-wait", std::chrono::seconds(1));
    max_block_bytes_ = config.get_uint("max-block-bytes", kMaxBlockFileBytes);
    if (max_block_bytes_ == 0) config.fail("max-block-bytes", "max-block-bytes must be positive");
    max_block_memory_ = config.get_uint("max-block-memory", kDefaultMaxBlockMemory);
    if (max_block_memory_ == 0)
      config.fail("max-block-memory", "max-block-memory must be positive");
  }

  Genesis init(const InitContext& ctx, std::stop_token) override {
    logger_ = ctx.logger;
    auto path = block_dir_ / kGenesisFile;
    auto text = read_if_exists(path);
    if (!text) throw PluginError("file_reader: " + path.string() + " does not exist", false);
    try {
      return algorand::parse_genesis(*text);
    } catch (const std::exception& e) {
      throw PluginError("file_reader: " + path.string() + ": " + e.what(), false);
    }
  }

  BlockData get_block(uint64_t round, std::stop_token stop) override {
    if (stop.stop_requested()) throw Cancelled();
    std::string name = pattern_.format(round);
    fs::path path = block_dir_ / name;
    auto bytes = read_if_exists(path, max_block_bytes_);
    if (!bytes) bytes = wait_for(path, name, stop);
    if (!bytes) throw PluginError("file_reader: " + path.string() + " does not exist (yet)", true);
    BlockData block;
    try {
      block = decode_block_file(std::move(*bytes), pattern_, max_block_bytes_, max_block_memory_);
    } catch (const std::exception& e) {
      throw PluginError("file_reader: cannot decode " + path.string() + ": " + e.what(), false);
    }
    if (block.round() != round)
      throw PluginError("file_reader: " + path.string() + " holds round " +
                            std::to_string(block.round()) + ", expected round " +
                            std::to_string(round),
                        false);
    return block;
  }

  void close() override {}

 private:
  // Waits up to wait_ for `name` to be completed in the block dir (closed after
  // writing, or renamed into place). inotify does the waiting; the stop token
  // wakes it. Without inotify, falls back to checking every 50 ms.
  std::optional<std::string> wait_for(const fs::path& path, const std::string& name,
                                      std::stop_token stop) {
    if (wait_.count() <= 0) return std::nullopt;
    auto deadline = std::chrono::steady_clock::now() + wait_;
    StopWaker waker(stop);
    UniqueFd watch(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (watch &&
        ::inotify_add_watch(watch.get(), block_dir_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
      watch.reset();
    // The file may have appeared before the watch existed.
    if (auto bytes = read_if_exists(path, max_block_bytes_)) return bytes;
    for (;;) {
      if (stop.stop_requested()) throw Cancelled();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd fds[2] = {{waker.fd(), POLLIN, 0}, {watch ? watch.get() : -1, POLLIN, 0}};
      int timeout = watch ? static_cast<int>(left.count())
                          : static_cast<int>(std::min<int64_t>(left.count(), 50));
      int n = ::poll(fds, 2, timeout);
      if (n < 0 && errno != EINTR)
        throw PluginError(std::string("file_reader: poll: ") + std::strerror(errno), true);
      if (stop.stop_requested()) throw Cancelled();
      bool seen = !watch;  // without inotify, look at every tick
      if (watch && (fds[1].revents & POLLIN)) seen = drained_event_for(watch.get(), name);
      if (seen)
        if (auto bytes = read_if_exists(path, max_block_bytes_)) return bytes;
    }
  }

  static bool drained_event_for(int fd, const std::string& name) {
    alignas(inotify_event) char buffer[4096];
    bool found = false;
    for (;;) {
      ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        auto* event = reinterpret_cast<inotify_event*>(buffer + off);
        if (event->len > 0 && name == event->name) found = true;
        if (event->mask & IN_Q_OVERFLOW) found = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      }
    }
    return found;
  }

  fs::path block_dir_;
  FilenamePattern pattern_ = FilenamePattern::parse(kDefaultPattern);
  std::chrono::nanoseconds wait_{std::chrono::seconds(1)};
  size_t max_block_bytes_ = kMaxBlockFileBytes;
  size_t max_block_memory_ = kDefaultMaxBlockMemory;
  Logger* logger_ = nullptr;
};

class FileWriter final : public Exporter {
 public:
  void configure(PluginConfig& config) override {
    block_dir_ = config.get_string("block-dir", "");
    pattern_ = configure_pattern(config);
    options_.drop_certificate = config.get_bool("drop-certificate", false);
    std::string addresses = config.get_string("json-addresses", "base64");
    if (addresses == "base32")
      options_.addresses = AddressForm::base32;
    else if (addresses != "base64")
      config.fail("json-addresses", "must be \"base64\" (Go's form) or \"base32\"");
    std::string invalid_utf8 = config.get_string("json-invalid-utf8", "escape");
    if (invalid_utf8 == "replace")
      options_.invalid_utf8 = Utf8Mode::replace;
    else if (invalid_utf8 != "escape")
      config.fail("json-invalid-utf8", "must be \"escape\" or \"replace\" (Go's form)");
    output_tag_ = pattern_.format_tag() + (options_.drop_certificate ? "+drop-certificate" : "");
  }

  void init(const InitContext& ctx, std::stop_token) override {
    if (block_dir_.empty()) block_dir_ = ctx.data_dir;
    fs::create_directories(block_dir_);
    // Temp files of a run that crashed mid-write: never complete, never needed.
    for (const auto& entry : fs::directory_iterator(block_dir_))
      if (entry.path().filename().string().rfind(kTempPrefix, 0) == 0) fs::remove(entry.path());
    next_round_ = ctx.next_round;
    if (ctx.genesis) {
      std::string text = ctx.genesis->json;
      if (text.empty()) {
        // An importer without a genesis document (generator): record what it said.
        nlohmann::ordered_json doc;
        doc["id"] = ctx.genesis->id;
        doc["network"] = ctx.genesis->network;
        text = doc.dump(2);
      }
      auto path = block_dir_ / kGenesisFile;
      if (auto existing = read_if_exists(path); !existing || *existing != text)
        replace_file_atomically(path, text);
    }
  }

  void receive(const BlockData& block, std::stop_token stop) override {
    stage(block, stop);
    commit_unit(stop);
  }

  // Group commit: each round of a unit is written to its temp file as it is
  // staged; the commit fsyncs every file, renames them into place and fsyncs
  // the directory once.
  bool supports_units() const override { return true; }

  void stage(const BlockData& block, std::stop_token stop) override {
    try {
      uint64_t expected = next_round_ + staged_.size();
      if (block.round() != expected)
        throw PluginError("file_writer: received round " + std::to_string(block.round()) +
                              ", expected round " + std::to_string(expected),
                          false);
      std::string storage;
      staged_.push_back(write_temp(block.round(), file_bytes(block, storage), stop));
    } catch (...) {
      abort_unit();
      throw;
    }
  }

  // Temp files are fsynced before any rename: the stop token is honoured until
  // the first rename (the commit point); a cancelled or failed commit removes
  // every temp file of the unit.
  void commit_unit(std::stop_token stop) override {
    try {
      if (stop.stop_requested()) throw Cancelled();
      std::vector<FsyncTarget> targets;
      targets.reserve(staged_.size());
      for (const auto& file : staged_) targets.push_back({file.fd.get(), file.temp});
      // A failed fsync is fatal for the unit, as PostgreSQL treats it: the
      // kernel may have dropped the dirty pages, so a retried fsync proves
      // nothing. The rounds are not committed; a restart rewrites them.
      if (std::size_t failed = fs_fsync_all(targets); failed < staged_.size())
        throw_fatal("fsync " + staged_[failed].temp);
      for (auto& file : staged_) file.fd.reset();
      if (stop.stop_requested()) throw Cancelled();
    } catch (...) {
      abort_unit();
      throw;
    }
    for (std::size_t i = 0; i < staged_.size(); ++i) {
      if (fs_rename(staged_[i].temp, staged_[i].target) != 0) {
        int error = errno;
        std::string what = "rename " + staged_[i].temp + " to " + staged_[i].target.string();
        abort_unit();  // the rest; the renamed files are rewritten by the retry or restart
        errno = error;
        throw_errno(what);
      }
      staged_[i].temp.clear();
    }
    std::size_t committed = staged_.size();
    staged_.clear();
    // Until the directory is synced the renames may be lost at power loss: a
    // failure here must keep the checkpoint behind these rounds.
    UniqueFd dir(fs_open(block_dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) throw_fatal("open " + block_dir_.string() + " to fsync it");
    if (fs_fsync(dir.get(), block_dir_) != 0) throw_fatal("fsync " + block_dir_.string());
    next_round_ += committed;
  }

  void abort_unit() noexcept override {
    for (const auto& file : staged_)
      if (!file.temp.empty()) ::unlink(file.temp.c_str());
    staged_.clear();
  }

  // Overlap: encode and compress on a prepare helper, ahead of the exporter.
  bool prepares() const override { return true; }
  void prepare(BlockData& block) const override {
    if (!block.encoded(output_tag_))
      block.set_encoded(output_tag_, encode_block_file(block, pattern_, options_));
  }

  void close() override { abort_unit(); }

 private:
  struct StagedFile {
    std::string temp;  // empty once renamed
    fs::path target;
    UniqueFd fd;
  };

  // The bytes read (pass-through) or prepared, when they are this writer's
  // output; else a fresh encoding kept in `storage`.
  std::string_view file_bytes(const BlockData& block, std::string& storage) const {
    if (const std::string* bytes = block.encoded(output_tag_)) return *bytes;
    storage = encode_block_file(block, pattern_, options_);
    return storage;
  }

  StagedFile write_temp(uint64_t round, std::string_view data, std::stop_token stop) {
    fs::path target = block_dir_ / pattern_.format(round);
    std::string temp =
        (block_dir_ / (kTempPrefix + target.filename().string() + ".XXXXXX")).string();
    UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (!fd)
      throw PluginError("file_writer: cannot create " + temp + ": " + std::strerror(errno), true);
    try {
      if (::fchmod(fd.get(), 0644) != 0) throw_errno("fchmod " + temp);
      constexpr size_t kChunk = 1 << 20;
      for (size_t off = 0; off < data.size(); off += kChunk) {
        if (stop.stop_requested()) throw Cancelled();
        write_all(fd.get(), data.substr(off, kChunk), "write " + temp, temp);
      }
      if (stop.stop_requested()) throw Cancelled();
      // Start the writeback now, so that the unit's fsyncs find less to do.
      // Only a hint: the fsync at commit is what makes the file durable.
      ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
    return {std::move(temp), std::move(target), std::move(fd)};
  }

  [[noreturn]] static void throw_fatal(const std::string& what) {
    throw PluginError("file_writer: " + what + ": " + std::strerror(errno) +
                          " (not retried: the data may not be durable)",
                      false);
  }

  fs::path block_dir_;
  FilenamePattern pattern_ = FilenamePattern::parse(kDefaultPattern);
  BlockEncodeOptions options_;
  // The BlockData::encoded() tag of this writer's output: the pattern's format,
  // unless drop-certificate makes it differ from the bytes that were read.
  std::string output_tag_;
  std::vector<StagedFile> staged_;
  uint64_t next_round_ = 0;  // the first round not committed
};

}  // namespace

void register_file_plugins(Registry& registry) {
  registry.add_importer({"file_reader",
                         "Importer for fetching blocks from files in a directory created by the "
                         "'file_writer' plugin.",
                         kReaderSample, false},
                        [] { return std::make_unique<FileReader>(); });
  registry.add_exporter(
      {"file_writer", "Exporter for writing data to a file.", kWriterSample, false},
      [] { return std::make_unique<FileWriter>(); });
}

}  // namespace conduit::plugins
