#include "service/journal_sink.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define SD_JOURNAL_SUPPRESS_LOCATION  // CODE_FILE= etc. would name this sink, not the caller
#include <systemd/sd-journal.h>

namespace conduit::service {

int journal_priority(LogLevel level) {
  switch (level) {
    case LogLevel::error:
      return 3;
    case LogLevel::warn:
      return 4;
    case LogLevel::info:
      return 6;
    case LogLevel::debug:
    case LogLevel::trace:
      return 7;
  }
  return 6;
}

void JournalSink::write(LogLevel level, std::string_view message, const LogFields& fields) {
  std::vector<std::string> items;
  items.reserve(7);
  items.push_back("MESSAGE=" + std::string(message));
  items.push_back("PRIORITY=" + std::to_string(journal_priority(level)));
  items.push_back("SYSLOG_IDENTIFIER=conduit");
  if (fields.round) items.push_back("CONDUIT_ROUND=" + std::to_string(*fields.round));
  if (!fields.plugin.empty()) items.push_back("CONDUIT_PLUGIN=" + fields.plugin);
  if (!fields.stop_reason.empty()) items.push_back("CONDUIT_STOP_REASON=" + fields.stop_reason);
  if (!fields.message_id.empty()) items.push_back("MESSAGE_ID=" + fields.message_id);
  std::vector<iovec> iov;
  iov.reserve(items.size());
  for (auto& item : items) iov.push_back({item.data(), item.size()});
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
    // The journal is gone: do not lose the line.
    std::fprintf(stderr, "<%d>%.*s\n", journal_priority(level), static_cast<int>(message.size()),
                 message.data());
  }
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (!stream) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

}  // namespace conduit::service
