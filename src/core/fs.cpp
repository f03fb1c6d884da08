#include "core/fs.hpp"

#include <fcntl.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace conduit {

void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void write_all(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void replace_file_atomically(const std::filesystem::path& path, std::string_view data,
                             bool durable) {
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  auto temp = path;
  temp += ".tmp";
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create " + temp.string());
    try {
      write_all(fd.get(), data, "write " + temp.string());
      if (durable && ::fsync(fd.get()) != 0) throw_errno("fsync " + temp.string());
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    throw_errno("rename " + temp.string() + " to " + path.string());
  }
  if (durable) {
    UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd) throw_errno("open " + dir.string());
    if (::fsync(dir_fd.get()) != 0) throw_errno("fsync " + dir.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::system_error(errno, std::generic_category(), "open " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace conduit
