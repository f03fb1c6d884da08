#include "plugins/builtin.hpp"

#include "conduit_config.h"
#include "plugins/algod/algod.hpp"
#include "plugins/external/external.hpp"
#include "plugins/files/file_plugins.hpp"
#include "plugins/filter/filter_processor.hpp"
#include "plugins/generator/generator.hpp"
#include "plugins/noop/noop.hpp"
#include "plugins/postgresql/postgresql.hpp"
#include "plugins/testing/testing.hpp"

namespace conduit {

const Registry& builtin_registry() {
  static const Registry registry = [] {
    Registry r;
    plugins::register_noop(r);
    plugins::register_generator(r);
    plugins::register_file_plugins(r);
    plugins::register_algod(r);
    plugins::register_filter_processor(r);
#if CONDUIT_TEST_PLUGINS
    plugins::register_wedge(r);
    plugins::register_corrupt_importer(r);
#endif
    plugins::register_postgresql(r);
    plugins::external::register_external(r);
    return r;
  }();
  return registry;
}

}  // namespace conduit
