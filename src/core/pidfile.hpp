// The PID file and the data-directory lock (docs/contract.md section 7): one conduit
// per data dir. The data dir holds an flock(2) lock, the PID file a POSIX
// record lock whose holder F_GETLK names; both live as long as the process,
// so a crashed conduit never leaves a lock behind.
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "core/fs.hpp"
#include "core/stop.hpp"

namespace conduit {

class AlreadyRunning : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InstanceLock {
 public:
  // Locks `data_dir` and writes our PID to `pid_file`. Throws AlreadyRunning when
  // another process holds either; other failures throw std::system_error.
  InstanceLock(const std::filesystem::path& data_dir, const std::filesystem::path& pid_file);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  // Records how the process stopped in the PID file (read by a waiting
  // `conduit stop` through its own descriptor), then removes the file.
  void release(const StopCause& cause);

 private:
  UniqueFd dir_fd_;
  UniqueFd pid_fd_;
  std::filesystem::path pid_file_;
};

// What `conduit stop` learns from a PID file.
struct PidFileInfo {
  pid_t pid = 0;      // the PID written in the file (0: none or not a number)
  pid_t holder = 0;   // the process holding the file's lock (F_GETLK), 0: none
  bool held = false;  // a live process holds the lock; false means stale
  UniqueFd fd;        // kept open to read the stop record after the process exits
  // The file names the process that holds its lock: the only one to signal.
  bool proven() const { return held && pid > 0 && holder == pid; }
};

// The PID of the process holding a POSIX lock on `fd`'s file, 0 when none.
pid_t lock_holder(int fd);

// Opens `pid_file`; nullopt when it does not exist.
std::optional<PidFileInfo> probe_pid_file(const std::filesystem::path& pid_file);

// After the process behind `info` exited: the stop record it left, if any.
std::optional<StopCause> read_stop_record(const PidFileInfo& info);

}  // namespace conduit
