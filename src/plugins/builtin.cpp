#include "conduit_config.h"
#include "core/registry.hpp"
#include "plugins/noop.hpp"

namespace conduit {

const Registry& builtin_registry() {
  static const Registry registry = [] {
    Registry r;
    plugins::register_noop(r);
    plugins::register_generator(r);
#if CONDUIT_TEST_PLUGINS
    plugins::register_wedge(r);
#endif
    return r;
  }();
  return registry;
}

}  // namespace conduit
