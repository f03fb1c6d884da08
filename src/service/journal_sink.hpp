// Native journald logging (docs/contract.md section 6): one sd_journal_send entry per
// line, with PRIORITY, SYSLOG_IDENTIFIER=conduit and the CONDUIT_* fields.
#pragma once

#include "core/log.hpp"

namespace conduit::service {

class JournalSink final : public LogSink {
 public:
  void write(LogLevel level, std::string_view message, const LogFields& fields) override;
};

// syslog priority of a level (error -> 3 err, warn -> 4, info -> 6, debug/trace -> 7).
int journal_priority(LogLevel level);

// True when stderr is connected to the journal ($JOURNAL_STREAM names stderr's
// device and inode), as under systemd with the default StandardError=journal.
bool stderr_is_journal();

}  // namespace conduit::service
