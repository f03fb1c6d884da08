#include "core/registry.hpp"

namespace conduit {

std::string_view to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::importer:
      return "importer";
    case PluginKind::processor:
      return "processor";
    case PluginKind::exporter:
      return "exporter";
  }
  return "plugin";
}

void Registry::add_importer(PluginMetadata meta, ImporterFactory make) {
  auto name = meta.name;
  importers_[name] = {std::move(meta), std::move(make)};
}
void Registry::add_processor(PluginMetadata meta, ProcessorFactory make) {
  auto name = meta.name;
  processors_[name] = {std::move(meta), std::move(make)};
}
void Registry::add_exporter(PluginMetadata meta, ExporterFactory make) {
  auto name = meta.name;
  exporters_[name] = {std::move(meta), std::move(make)};
}

std::unique_ptr<Importer> Registry::make_importer(const std::string& name) const {
  auto it = importers_.find(name);
  return it == importers_.end() ? nullptr : it->second.make();
}
std::unique_ptr<Processor> Registry::make_processor(const std::string& name) const {
  auto it = processors_.find(name);
  return it == processors_.end() ? nullptr : it->second.make();
}
std::unique_ptr<Exporter> Registry::make_exporter(const std::string& name) const {
  auto it = exporters_.find(name);
  return it == exporters_.end() ? nullptr : it->second.make();
}

std::vector<PluginMetadata> Registry::list(PluginKind kind) const {
  std::vector<PluginMetadata> out;
  auto collect = [&](const auto& map) {
    for (const auto& [name, entry] : map) out.push_back(entry.meta);
  };
  if (kind == PluginKind::importer) collect(importers_);
  if (kind == PluginKind::processor) collect(processors_);
  if (kind == PluginKind::exporter) collect(exporters_);
  return out;
}

std::vector<std::string> Registry::names(PluginKind kind) const {
  std::vector<std::string> out;
  for (const auto& meta : list(kind)) out.push_back(meta.name);
  return out;
}

bool Registry::has(PluginKind kind, const std::string& name) const {
  switch (kind) {
    case PluginKind::importer:
      return importers_.count(name) != 0;
    case PluginKind::processor:
      return processors_.count(name) != 0;
    case PluginKind::exporter:
      return exporters_.count(name) != 0;
  }
  return false;
}

namespace {

std::string known(const Registry& registry, PluginKind kind) {
  std::string out;
  for (const auto& name : registry.names(kind)) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// A built-in plugin of that name, else an external one (conduit-plugin(7)).
template <class T>
std::unique_ptr<T> make_plugin(std::unique_ptr<T> builtin, PluginSpec& spec,
                               const Registry& registry, const Config& config, PluginKind kind) {
  if (builtin) {
    if (!spec.host_keys_location.empty())
      throw ConfigError(spec.host_keys_location + " is only for external plugins; '" + spec.name +
                        "' is built in");
    return builtin;
  }
  std::string searched;
  if (const ExternalResolver* external = registry.external()) {
    std::unique_ptr<Plugin> plugin;
    try {
      plugin = external->make(kind, spec, config);
    } catch (const ConfigError& e) {
      throw ConfigError(spec.location + ": " + std::string(to_string(kind)) + " '" + spec.name +
                        "': " + e.what());
    }
    if (plugin) {
      auto* typed = dynamic_cast<T*>(plugin.get());
      if (!typed)
        throw ConfigError(spec.location + ": '" + spec.name + "' is not an " +
                          std::string(to_string(kind)));
      plugin.release();
      return std::unique_ptr<T>(typed);
    }
    searched = "; no executable '" + spec.name + "' in " + external->searched(config);
  }
  throw ConfigError(spec.location + ": unknown " + std::string(to_string(kind)) + " '" + spec.name +
                    "' (known: " + known(registry, kind) + searched + ")");
}

// Configures the plugin for `spec`; the keys it accepts without effect become
// warnings of `config`.
template <class T>
std::unique_ptr<T> make_configured(std::unique_ptr<T> builtin, PluginSpec& spec, Config& config,
                                   const Registry& registry, PluginKind kind) {
  auto plugin = make_plugin(std::move(builtin), spec, registry, config, kind);
  std::size_t seen = spec.config.warnings().size();
  plugin->configure(spec.config);
  spec.config.finish();
  const auto& warnings = spec.config.warnings();
  config.warnings.insert(config.warnings.end(), warnings.begin() + seen, warnings.end());
  return plugin;
}

}  // namespace

PipelinePlugins build_plugins(const Registry& registry, Config& config) {
  PipelinePlugins plugins;
  plugins.importer = make_configured(registry.make_importer(config.importer.name), config.importer,
                                     config, registry, PluginKind::importer);
  plugins.importer_name = config.importer.name;
  for (auto& spec : config.processors) {
    plugins.processors.push_back(make_configured(registry.make_processor(spec.name), spec, config,
                                                 registry, PluginKind::processor));
    plugins.processor_names.push_back(spec.name);
  }
  plugins.exporter = make_configured(registry.make_exporter(config.exporter.name), config.exporter,
                                     config, registry, PluginKind::exporter);
  plugins.exporter_name = config.exporter.name;
  return plugins;
}

}  // namespace conduit
