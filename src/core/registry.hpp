// Plugins by name (`conduit list`, and the config's `name` keys).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/plugin.hpp"

namespace conduit {

// Plugins that are not built in: executables found at run time
// (conduit-plugin(7)); provided by the plugins layer.
class ExternalResolver {
 public:
  virtual ~ExternalResolver() = default;
  // An unconfigured plugin of `kind` for `spec`, or nullptr when no plugin of
  // that name exists. Throws ConfigError for one that exists but cannot be run.
  virtual std::unique_ptr<Plugin> make(PluginKind kind, const PluginSpec& spec,
                                       const Config& config) const = 0;
  // Where it looks, for the message about an unknown plugin.
  virtual std::string searched(const Config& config) const = 0;
};

class Registry {
 public:
  using ImporterFactory = std::function<std::unique_ptr<Importer>()>;
  using ProcessorFactory = std::function<std::unique_ptr<Processor>()>;
  using ExporterFactory = std::function<std::unique_ptr<Exporter>()>;

  void add_importer(PluginMetadata meta, ImporterFactory make);
  void add_processor(PluginMetadata meta, ProcessorFactory make);
  void add_exporter(PluginMetadata meta, ExporterFactory make);

  std::unique_ptr<Importer> make_importer(const std::string& name) const;
  std::unique_ptr<Processor> make_processor(const std::string& name) const;
  std::unique_ptr<Exporter> make_exporter(const std::string& name) const;

  std::vector<PluginMetadata> list(PluginKind kind) const;
  std::vector<std::string> names(PluginKind kind) const;
  bool has(PluginKind kind, const std::string& name) const;

  void set_external(std::shared_ptr<const ExternalResolver> resolver) {
    external_ = std::move(resolver);
  }
  const ExternalResolver* external() const { return external_.get(); }

 private:
  template <class F>
  struct Entry {
    PluginMetadata meta;
    F make;
  };
  std::map<std::string, Entry<ImporterFactory>> importers_;
  std::map<std::string, Entry<ProcessorFactory>> processors_;
  std::map<std::string, Entry<ExporterFactory>> exporters_;
  std::shared_ptr<const ExternalResolver> external_;
};

// Instances built from a validated config, ready for a Pipeline. Every plugin has
// had configure() called; none has been initialised.
struct PipelinePlugins {
  std::unique_ptr<Importer> importer;
  std::string importer_name;
  std::vector<std::unique_ptr<Processor>> processors;
  std::vector<std::string> processor_names;
  std::unique_ptr<Exporter> exporter;
  std::string exporter_name;
};

// Constructs and configures every plugin of `config`. Throws ConfigError (unknown
// plugin name, bad plugin keys) with the file location.
PipelinePlugins build_plugins(const Registry& registry, Config& config);

}  // namespace conduit
