// GET /health and GET /metrics over loopback, from a running Supervisor:
// JSON fields, the Prometheus text format, counters that only grow.
#include <gtest/gtest.h>

#include <msgpack.hpp>

#include <httplib.h>

#include <cctype>
#include <cmath>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/supervisor.hpp"
#include "service/http_api.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
using conduit::ObserverFanout;
using conduit::service::HttpApi;
using conduit::service::Metrics;

namespace {

// Signals "exported-N" once round N is committed.
struct ExportLatch : Observer {
  explicit ExportLatch(World& world) : world(world) {}
  // The last of a round's callbacks: the metrics have seen all of them.
  void on_exported_block(const BlockData& block) override {
    world.signal("exported-" + std::to_string(block.round()));
  }
  World& world;
};

std::string get(int port, const std::string& path, std::string* content_type = nullptr) {
  httplib::Client client("127.0.0.1", port);
  auto result = client.Get(path.c_str());
  if (!result) return "request failed: " + httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200) << path;
  if (content_type) *content_type = result->get_header_value("Content-Type");
  return result->body;
}

// One parsed exposition: samples by full name with labels, and HELP/TYPE by family.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
};

bool metric_name(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') return false;
  return true;
}

// Parsed by hand: GCC 12's <regex> trips -Werror=maybe-uninitialized under ASan.
Exposition parse_exposition(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) {
      auto space = line.find(' ', 7);
      std::string name = line.substr(7, space - 7);
      EXPECT_TRUE(metric_name(name) && space != std::string::npos && space + 1 < line.size())
          << line;
      e.helps[name] = line;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      auto space = line.find(' ', 7);
      if (space == std::string::npos) {
        ADD_FAILURE() << "bad TYPE line: " << line;
        continue;
      }
      std::string name = line.substr(7, space - 7), type = line.substr(space + 1);
      EXPECT_TRUE(metric_name(name)) << line;
      EXPECT_TRUE(type == "counter" || type == "gauge" || type == "histogram" || type == "summary")
          << line;
      EXPECT_TRUE(e.helps.count(name)) << "TYPE before HELP: " << line;
      e.types[name] = type;
    } else {
      auto value_at = line.rfind(' ');
      if (value_at == std::string::npos) {
        ADD_FAILURE() << "not an exposition line: '" << line << "'";
        continue;
      }
      std::string series = line.substr(0, value_at), value = line.substr(value_at + 1);
      auto brace = series.find('{');
      EXPECT_TRUE(metric_name(series.substr(0, brace))) << line;
      if (brace != std::string::npos) {
        EXPECT_EQ(series.back(), '}') << line;
      }
      double number = 0;
      if (value == "+Inf") {
        number = INFINITY;
      } else {
        size_t used = 0;
        number = std::stod(value, &used);
        EXPECT_EQ(used, value.size()) << line;
      }
      e.samples[series] = number;
    }
  }
  return e;
}

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = test_registry();
    write_text(
        dir_ / "conduit.toml",
        test_config(1,
                    "[api]\naddr = \"127.0.0.1:0\"\n"
                    "[metrics]\nmode = \"ON\"\naddr = \"127.0.0.1:0\"\nprefix = \"ctest\"\n"));
  }
  World world_;
  TempDir dir_;
  Registry registry_;
  Logger logger_{nullptr, LogLevel::error};
};

}  // namespace

TEST_F(HttpApiTest, HealthAndMetricsOverLoopback) {
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  HttpApi api(supervisor.config(), supervisor, logger_);
  ASSERT_TRUE(api.health_port());
  ASSERT_TRUE(api.metrics_port());
  ExportLatch latch(world_);
  ObserverFanout observers;
  observers.add(&api.observer());
  observers.add(&latch);
  supervisor.set_observer(&observers);

  bool failed_once = false;  // importer thread only
  world_.hook = [&](const Call& c, std::stop_token stop) {
    if (c.plugin != "importer" || c.step != "get") return;
    if (c.round == 3 && !failed_once) {
      failed_once = true;
      throw PluginError("node unreachable", true);  // retried once
    }
    if (c.round == 8) World::block_until_cancelled(stop);  // holds the pipeline running
  };
  StopCause cause;
  std::thread runner([&] { cause = supervisor.run(); });
  world_.wait("exported-7");

  // /health while running: Go Conduit's round and errors, plus state.
  std::string content_type;
  auto health = nlohmann::json::parse(get(*api.health_port(), "/health", &content_type));
  EXPECT_EQ(content_type, "application/json");
  EXPECT_EQ(health["round"], 8u);
  EXPECT_EQ(health["state"], "running");
  ASSERT_EQ(health["errors"].size(), 1u);
  EXPECT_NE(health["errors"][0].get<std::string>().find("node unreachable"), std::string::npos);
  EXPECT_NE(health["errors"][0].get<std::string>().find("round 3"), std::string::npos);
  EXPECT_EQ(health["stop-reason"], "");

  std::string body = get(*api.metrics_port(), "/metrics", &content_type);
  EXPECT_EQ(content_type, "text/plain; version=0.0.4; charset=utf-8");
  ASSERT_FALSE(body.empty());
  EXPECT_EQ(body.back(), '\n');
  Exposition first = parse_exposition(body);
  // Go Conduit's metrics (conduit/metrics/metrics.go): names, types, labels.
  EXPECT_EQ(first.types["ctest_imported_round"], "gauge");
  EXPECT_EQ(first.samples["ctest_imported_round"], 7);
  for (auto name : {"ctest_import_time_sec", "ctest_importer_time_sec", "ctest_exporter_time_sec",
                    "ctest_processor_time_sec", "ctest_imported_tx_per_block"})
    EXPECT_EQ(first.types[name], "summary") << name;
  EXPECT_EQ(first.types["ctest_pipeline_retry_count"], "histogram");
  // Eight rounds through each stage (the failed importer attempt is not timed).
  EXPECT_EQ(first.samples["ctest_importer_time_sec_count"], 8);
  EXPECT_EQ(first.samples["ctest_exporter_time_sec_count"], 8);
  EXPECT_EQ(first.samples["ctest_import_time_sec_count"], 8);
  EXPECT_EQ(first.samples["ctest_imported_tx_per_block_count"], 8);
  EXPECT_EQ(first.samples["ctest_processor_time_sec_count{processor_name=\"test_processor\"}"], 8);
  // One importer call needed one retry before it succeeded.
  EXPECT_EQ(first.samples["ctest_pipeline_retry_count_count"], 1);
  EXPECT_EQ(first.samples["ctest_pipeline_retry_count_sum"], 1);
  EXPECT_EQ(first.samples["ctest_pipeline_retry_count_bucket{le=\"0.5\"}"], 0);
  EXPECT_EQ(first.samples["ctest_pipeline_retry_count_bucket{le=\"1\"}"], 1);
  EXPECT_EQ(first.samples["ctest_pipeline_retry_count_bucket{le=\"+Inf\"}"], 1);
  // conduit's own, under their own names.
  EXPECT_EQ(first.types["ctest_plugin_retries_total"], "counter");
  EXPECT_EQ(first.samples["ctest_plugin_retries_total{plugin=\"importer:test_importer\"}"], 1);
  EXPECT_EQ(first.types["ctest_exported_txns_total"], "counter");
  EXPECT_EQ(first.samples["ctest_state{state=\"running\"}"], 1);
  EXPECT_EQ(first.samples["ctest_state{state=\"stopped\"}"], 0);
  EXPECT_EQ(first.samples.count("ctest_stop_reason{reason=\"stop-requested\"}"), 0u);
  // Buckets are cumulative and end with +Inf equal to _count.
  {
    int buckets = 0;
    std::istringstream in(body);
    std::string line;
    double last = -1;
    while (std::getline(in, line)) {
      if (line.rfind("ctest_pipeline_retry_count_bucket", 0) != 0) continue;
      double value = std::stod(line.substr(line.rfind(' ') + 1));
      EXPECT_GE(value, last) << line;
      last = value;
      ++buckets;
    }
    EXPECT_EQ(buckets, 12);  // client_golang's DefBuckets and +Inf
    EXPECT_EQ(last, first.samples["ctest_pipeline_retry_count_count"]);
  }

  supervisor.stop(StopMode::now, "test");
  runner.join();
  EXPECT_EQ(cause.reason, StopReason::stop_requested);

  // After the stop: the reason shows, and no counter went backwards.
  health = nlohmann::json::parse(get(*api.health_port(), "/health"));
  EXPECT_EQ(health["state"], "stopped");
  EXPECT_EQ(health["stop-reason"], "stop-requested");
  Exposition second = parse_exposition(get(*api.metrics_port(), "/metrics"));
  EXPECT_EQ(second.samples["ctest_stop_reason{reason=\"stop-requested\"}"], 1);
  EXPECT_EQ(second.samples["ctest_state{state=\"stopped\"}"], 1);
  for (const auto& [name, value] : first.samples) {
    std::string family = name.substr(0, name.find('{'));
    bool monotonic = family.ends_with("_count") || family.ends_with("_sum") ||
                     family.ends_with("_bucket") || family.ends_with("_total");
    if (!monotonic) continue;
    ASSERT_TRUE(second.samples.count(name)) << name;
    EXPECT_GE(second.samples[name], value) << name;
  }
}

TEST_F(HttpApiTest, SharedAddressServesBothPaths) {
  Config config = parse_config(test_config(0), dir_.path(), "conduit.toml");
  config.api.addr = "127.0.0.1:0";
  config.metrics.mode = "ON";
  config.metrics.addr = config.api.addr;  // the same address: one server
  Supervisor supervisor(registry_, {.data_dir = dir_.path(), .durable_checkpoint = false}, logger_);
  HttpApi api(config, supervisor, logger_);
  ASSERT_TRUE(api.health_port());
  EXPECT_EQ(api.health_port(), api.metrics_port());
  int port = *api.health_port();
  EXPECT_EQ(nlohmann::json::parse(get(port, "/health"))["state"], "starting");
  EXPECT_NE(get(port, "/metrics").find("# TYPE conduit_imported_round gauge"), std::string::npos);
}

TEST(ListenAddress, ParsesGoStyleAddresses) {
  using conduit::service::parse_listen_address;
  EXPECT_EQ(parse_listen_address(":9999", "k").host, "0.0.0.0");
  EXPECT_EQ(parse_listen_address(":9999", "k").port, 9999);
  EXPECT_EQ(parse_listen_address("127.0.0.1:8981", "k").host, "127.0.0.1");
  EXPECT_EQ(parse_listen_address("[::1]:80", "k").host, "::1");
  EXPECT_THROW(parse_listen_address("localhost", "k"), ConfigError);
  EXPECT_THROW(parse_listen_address("host:99999", "k"), ConfigError);
  EXPECT_THROW(parse_listen_address("host:http", "k"), ConfigError);
}

TEST(ListenAddress, ConfigRejectsBadAddressesWithTheirLocation) {
  TempDir dir;
  auto error_for = [&](const std::string& tables) -> std::string {
    try {
      parse_config(test_config(0, tables), dir.path(), "conduit.toml");
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_for("[api]\naddr = \"127.0.0.1:8981\"\n"), "");
  EXPECT_EQ(error_for("[metrics]\nmode = \"ON\"\naddr = \":9999\"\nprefix = \"my_conduit\"\n"), "");
  // test_config puts two lines before the tables: [api] is line 3, addr line 4.
  EXPECT_NE(error_for("[api]\naddr = \"localhost\"\n").find("conduit.toml:4:"), std::string::npos);
  EXPECT_NE(error_for("[metrics]\nmode = \"ON\"\naddr = \":http\"\n").find("conduit.toml:5:"),
            std::string::npos);
  EXPECT_NE(error_for("[metrics]\nprefix = \"my-conduit\"\n").find("prefix"), std::string::npos);
}

// Go's addMetrics: imported_txns{txn_type} is the last block's count per type
// (plus "inner", recursively), and a type missing from a block keeps its value;
// imported_tx_per_block observes payset plus inner transactions.
TEST(GoMetrics, ImportedTxnsByTypeAsGoConduit) {
  auto block_of = [](const std::vector<std::pair<std::string, int>>& txns) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> p(buffer);
    pack_round_one_block_head(p, static_cast<uint32_t>(txns.size()));
    for (const auto& [type, nested_inner] : txns) {
      p.pack_map(nested_inner ? 2 : 1);
      p.pack("txn");
      p.pack_map(1);
      p.pack("type");
      p.pack(type);
      if (!nested_inner) continue;
      // dt.itx: one inner appl holding `nested_inner - 1` inner pays.
      p.pack("dt");
      p.pack_map(1);
      p.pack("itx");
      p.pack_array(1);
      p.pack_map(2);
      p.pack("txn");
      p.pack_map(1);
      p.pack("type");
      p.pack("appl");
      p.pack("dt");
      p.pack_map(1);
      p.pack("itx");
      p.pack_array(static_cast<uint32_t>(nested_inner - 1));
      for (int i = 0; i < nested_inner - 1; ++i) {
        p.pack_map(1);
        p.pack("txn");
        p.pack_map(1);
        p.pack("type");
        p.pack("pay");
      }
    }
    return BlockData::decode_msgpack({buffer.data(), buffer.size()});
  };
  Metrics metrics("conduit");
  metrics.on_exported_block(block_of({{"pay", 0}, {"pay", 0}, {"pay", 0}, {"appl", 3}}));
  Status status;
  Exposition first = parse_exposition(metrics.render(status));
  EXPECT_EQ(first.types["conduit_imported_txns"], "gauge");
  EXPECT_EQ(first.samples["conduit_imported_txns{txn_type=\"pay\"}"], 3);
  EXPECT_EQ(first.samples["conduit_imported_txns{txn_type=\"appl\"}"], 1);
  EXPECT_EQ(first.samples["conduit_imported_txns{txn_type=\"inner\"}"], 3);
  EXPECT_EQ(first.samples["conduit_imported_tx_per_block_sum"], 7);
  metrics.on_exported_block(block_of({{"axfer", 0}}));
  Exposition second = parse_exposition(metrics.render(status));
  EXPECT_EQ(second.samples["conduit_imported_txns{txn_type=\"axfer\"}"], 1);
  EXPECT_EQ(second.samples["conduit_imported_txns{txn_type=\"pay\"}"], 3);  // stale, as in Go
  EXPECT_EQ(second.samples["conduit_imported_tx_per_block_sum"], 8);
  EXPECT_EQ(second.samples["conduit_imported_tx_per_block_count"], 2);
  // Without a prefix, Go's bare names.
  EXPECT_NE(Metrics("").render(status).find("\nimported_round 0\n"), std::string::npos);
}
