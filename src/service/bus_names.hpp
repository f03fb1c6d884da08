// Where conduit's D-Bus service is found: shared by the daemon (bus.cpp) and
// the CLI's client, which needs no more of the service than this.
#pragma once

#include <string>

namespace conduit::service {

enum class BusMode { automatic, system, session, none };

inline constexpr const char* kBusName = "org.conduit.Pipeline";
inline constexpr const char* kObjectPath = "/org/conduit/Pipeline";
inline constexpr const char* kInterface = "org.conduit.Pipeline";

// BusMode::automatic resolved: the system bus when run by systemd as a system
// service ($INVOCATION_ID, and root or the `conduit` user), the session bus for
// other systemd-run processes (user units), no bus otherwise.
BusMode resolve_bus_mode(BusMode mode);

// The well-known name to own: $CONDUIT_BUS_NAME (conduit@.service sets it to
// org.conduit.Pipeline.<instance>), else org.conduit.Pipeline.
std::string bus_name_from_environment();

}  // namespace conduit::service
