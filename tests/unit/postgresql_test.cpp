// The postgresql exporter against a real PostgreSQL: a throw-away cluster made
// with initdb in a temp dir, served on a Unix socket there by a non-root user.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <future>
#include <iostream>
#include <latch>
#include <msgpack.hpp>
#include <random>
#include <thread>

#include "core/block_msgpack.hpp"
#include "core/config.hpp"
#include "core/registry.hpp"
#include "plugins/postgresql.hpp"
#include "test_support.hpp"

using namespace conduit;
using namespace conduit::test;
namespace pg = conduit::plugins::pg;

namespace {

// ---------------------------------------------------------------------------
// Encoding

std::string base64_decode(std::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    buffer = buffer << 6 | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out += static_cast<char>(buffer >> (bits - 8) & 0xff);
      bits -= 8;
    }
  }
  return out;
}

// A payment signed by go-algorand-sdk's TestMakePaymentTxn (transaction_test.go),
// whose reference transaction id that test checks.
constexpr const char* kSdkSignedTxn =
    "gqNzaWfEQPhUAZ3xkDDcc8FvOVo6UinzmKBCqs0woYSfodlmBMfQvGbeUx3Srxy3dyJDzv7rLm26BRv9FnL2/"
    "AuT7NYfiAWjdHhui6NhbXTNA+ilY2xvc2XEIEDpNJKIJWTLzpxZpptnVCaJ6aHDoqnqW2Wm6KRCH/"
    "xXo2ZlZc0EmKJmds0wsqNnZW6sZGV2bmV0LXYzMy4womdoxCAmCyAJoJOohot5WHIvpeVG7eftF+"
    "TYXEx4r7BFJpDt0qJsds00mqRub3RlxAjqABVHQ2y/lqNyY3bEIHts4k/rW6zAsWTinCIsV/X2PcOH1DkEglhBHF/"
    "hD3wCo3NuZMQg5/D4TQaBHfnzHI2HixFV9GcdUaGFwgCQhmf0SVhwaKGkdHlwZaNwYXk=";
constexpr const char* kSdkTxid = "5FJDJD5LMZC3EHUYYJNH5I23U4X6H2KXABNDGPIL557ZMJ33GZHQ";

TEST(PostgresqlEncoding, TxidOfAKnownAlgorandTransaction) {
  std::string bytes = base64_decode(kSdkSignedTxn);
  msgpack::object_handle signed_txn = msgpack::unpack(bytes.data(), bytes.size());
  const msgpack::object* txn = mp::find(signed_txn.get(), "txn");
  ASSERT_NE(txn, nullptr);
  ASSERT_NE(mp::find(*txn, "gen"), nullptr);
  ASSERT_NE(mp::find(*txn, "gh"), nullptr);

  // As the SDK signed it (nothing stripped, no hgi): the id is over the txn as is.
  EXPECT_EQ(pg::transaction_id(signed_txn.get(), msgpack::object()), kSdkTxid);

  // As a block stores it: gen and gh moved to the header, hgi set.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(2);
  packer.pack("block");
  packer.pack_map(2);
  packer.pack("gen");
  packer.pack(*mp::find(*txn, "gen"));
  packer.pack("gh");
  packer.pack(*mp::find(*txn, "gh"));
  packer.pack("stib");
  packer.pack_map(3);
  packer.pack("hgi");
  packer.pack(true);
  packer.pack("sig");
  packer.pack(*mp::find(signed_txn.get(), "sig"));
  packer.pack("txn");
  packer.pack_map(txn->via.map.size - 2);
  for (uint32_t i = 0; i < txn->via.map.size; ++i) {
    const auto& kv = txn->via.map.ptr[i];
    std::string_view key(kv.key.via.str.ptr, kv.key.via.str.size);
    if (key == "gen" || key == "gh") continue;
    packer.pack(kv.key);
    packer.pack(kv.val);
  }
  msgpack::object_handle block = msgpack::unpack(buffer.data(), buffer.size());
  const msgpack::object& header = *mp::find(block.get(), "block");
  const msgpack::object& stib = *mp::find(block.get(), "stib");
  EXPECT_EQ(pg::transaction_id(stib, header), kSdkTxid);

  // Without hgi the genesis id is not restored, so the id differs.
  msgpack::object without_hgi = stib;
  std::vector<msgpack::object_kv> fields(stib.via.map.ptr, stib.via.map.ptr + stib.via.map.size);
  fields.erase(fields.begin());  // "hgi"
  without_hgi.via.map.ptr = fields.data();
  without_hgi.via.map.size = static_cast<uint32_t>(fields.size());
  EXPECT_NE(pg::transaction_id(without_hgi, header), kSdkTxid);
}

TEST(PostgresqlEncoding, Base32Base64AndSha512_256) {
  // RFC 4648 test vectors (base32 without its padding).
  EXPECT_EQ(pg::base32_encode_nopad("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(pg::base32_encode_nopad("fooba"), "MZXW6YTB");
  EXPECT_EQ(pg::base32_encode_nopad("f"), "MY");
  EXPECT_EQ(pg::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(pg::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(pg::base64_encode("foobar"), "Zm9vYmFy");
  // FIPS 180-4 SHA-512/256 of "abc".
  std::string digest = pg::sha512_256("abc");
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned char c : digest) text += std::string{hex[c >> 4], hex[c & 15]};
  EXPECT_EQ(text, "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23");
}

TEST(PostgresqlEncoding, JsonOfMsgpack) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  packer.pack_map(5);
  packer.pack("bin");
  packer.pack_bin(3);
  packer.pack_bin_body("foo", 3);
  packer.pack("str");
  packer.pack(std::string("a\"b\\\n\x01\xff\xe2\x82\xac", 10));
  packer.pack("neg");
  packer.pack(-5);
  packer.pack(7);
  packer.pack_array(2);
  packer.pack(true);
  packer.pack_nil();
  packer.pack("nul");
  packer.pack(std::string("x\0y", 3));
  msgpack::object_handle h = msgpack::unpack(buffer.data(), buffer.size());
  EXPECT_EQ(pg::to_json(h.get()),
            "{\"bin\":\"Zm9v\",\"str\":\"a\\\"b\\\\\\n\\u0001\xEF\xBF\xBD\xe2\x82\xac\","
            "\"neg\":-5,\"7\":[true,null],\"nul\":\"x\xEF\xBF\xBDy\"}");
  EXPECT_EQ(pg::type_enum("pay"), 1);
  EXPECT_EQ(pg::type_enum("appl"), 6);
  EXPECT_EQ(pg::type_enum("hb"), 8);
  EXPECT_EQ(pg::type_enum("nope"), 0);
}

// ---------------------------------------------------------------------------
// A throw-away PostgreSQL cluster.

std::string find_pg_bindir() {
  for (const char* v : {"17", "16", "15"}) {
    std::string dir = std::string("/usr/lib/postgresql/") + v + "/bin";
    if (std::filesystem::exists(dir + "/initdb")) return dir;
  }
  return {};
}

class PgCluster {
 public:
  static constexpr const char* kUser = "conduit-test";

  explicit PgCluster(std::string bindir) : bindir_(std::move(bindir)) {
    if (::geteuid() == 0) {
      // PostgreSQL refuses to run as root: use a system user of the tests' own.
      if (run_command({"/usr/bin/id", "-u", kUser}).first != 0) {
        auto [status, out] =
            run_command({"/usr/sbin/useradd", "--system", "--no-create-home", "--home-dir",
                         "/nonexistent", "--shell", "/usr/sbin/nologin", kUser});
        if (status != 0 && run_command({"/usr/bin/id", "-u", kUser}).first != 0)
          throw std::runtime_error("useradd " + std::string(kUser) + " failed: " + out);
      }
      const passwd* user = ::getpwnam(kUser);
      if (!user) throw std::runtime_error("no user " + std::string(kUser));
      if (::chown(dir_.path().c_str(), user->pw_uid, user->pw_gid) != 0)
        throw std::runtime_error("chown failed");
    }
    run_checked({bindir_ + "/initdb", "-D", data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--locale=C", "-N"});
    start();
  }

  ~PgCluster() {
    run_command(as_user({bindir_ + "/pg_ctl", "-D", data(), "-m", "immediate", "-w", "stop"}));
  }

  std::string socket_dir() const { return dir_.path().string(); }
  std::string conninfo(const std::string& db) const {
    return "host=" + socket_dir() + " port=5432 user=postgres dbname=" + db +
           " application_name=conduit-test";
  }

  void start() {
    run_checked({bindir_ + "/pg_ctl", "-D", data(), "-l", (dir_ / "server.log").string(), "-w",
                 "-t", "60", "-o",
                 "-k " + socket_dir() + " -p 5432 -c listen_addresses='' -c fsync=off", "start"});
  }
  // A fast shutdown (connections are terminated) and a start again.
  void restart() {
    run_checked({bindir_ + "/pg_ctl", "-D", data(), "-m", "fast", "-w", "stop"});
    start();
  }

 private:
  std::string data() const { return (dir_ / "data").string(); }
  std::vector<std::string> as_user(std::vector<std::string> argv) const {
    if (::geteuid() != 0) return argv;
    argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", kUser, "--"});
    return argv;
  }
  void run_checked(std::vector<std::string> argv) const {
    auto [status, out] = run_command(as_user(argv));
    if (status != 0) throw std::runtime_error(argv[0] + " failed: " + out);
  }

  std::string bindir_;
  TempDir dir_;
};

// A test's connection for queries.
class Db {
 public:
  explicit Db(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK)
      throw std::runtime_error(std::string("connect: ") + PQerrorMessage(conn_));
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
  }
  ~Db() { PQfinish(conn_); }
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    auto status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      std::string error = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error(sql + ": " + error);
    }
    std::vector<std::vector<std::string>> out;
    for (int i = 0; i < PQntuples(r); ++i) {
      out.emplace_back();
      for (int j = 0; j < PQnfields(r); ++j)
        out.back().push_back(PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
    }
    PQclear(r);
    return out;
  }
  std::string scalar(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() || r[0].empty() ? "" : r[0][0];
  }
  void exec(const std::string& sql) { rows(sql); }

 private:
  PGconn* conn_;
};

class Postgresql : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string bindir = find_pg_bindir();
    if (bindir.empty()) return;
    cluster_ = new PgCluster(bindir);
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    if (!cluster_) GTEST_SKIP() << "PostgreSQL server binaries (initdb) not installed";
    // A database per test.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    db_name_ = "t_" + std::string(info->name());
    for (auto& c : db_name_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Db admin(cluster_->conninfo("postgres"));
    admin.exec("DROP DATABASE IF EXISTS " + db_name_);
    admin.exec("CREATE DATABASE " + db_name_);
  }

  std::string conninfo() const { return cluster_->conninfo(db_name_); }

  std::unique_ptr<Exporter> make_exporter(const std::string& extra = "") {
    std::string text =
        "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n"
        "[exporter.config]\nconnection-string = \"" +
        conninfo() + "\"\n" + extra;
    Config config = parse_config(text, dir_.path(), "conduit.toml");
    return std::move(build_plugins(builtin_registry(), config).exporter);
  }

  static BlockData generated_block(uint64_t round, uint64_t txns) {
    std::string text = "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = " +
                       std::to_string(txns) + "\n[exporter]\nname = \"noop\"\n";
    TempDir dir;
    Config config = parse_config(text, dir.path(), "conduit.toml");
    auto importer = std::move(build_plugins(builtin_registry(), config).importer);
    importer->init(InitContext{.next_round = round}, {});
    BlockData block = importer->get_block(round, {});
    importer->close();
    return block;
  }

  static PgCluster* cluster_;
  std::string db_name_;
  TempDir dir_;
  Logger quiet_{nullptr, LogLevel::error};
};
PgCluster* Postgresql::cluster_ = nullptr;

BlockData load_fixture(uint64_t round) {
  auto path = fixtures_dir() / (std::to_string(round) + "_block.msgp.gz");
  auto [status, bytes] = run_command({"/bin/gzip", "-dc", path.string()});
  if (status != 0) throw std::runtime_error("gzip -dc " + path.string() + " failed");
  return BlockData::decode_msgpack(bytes);
}

// Calls `on_line` with every log line (on the logging thread).
class CallbackSink : public LogSink {
 public:
  explicit CallbackSink(std::function<void(std::string_view)> on_line)
      : on_line_(std::move(on_line)) {}
  void write(LogLevel, std::string_view message, const LogFields&) override { on_line_(message); }

 private:
  std::function<void(std::string_view)> on_line_;
};

TEST_F(Postgresql, LoadsTheFixtureBlocksWithTheirTxids) {
  CONDUIT_REQUIRE_FIXTURES();
  auto exporter = make_exporter();
  ASSERT_EQ(exporter->round_request(dir_.path()), 0u);  // no schema yet: no request
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  size_t txns = 0;
  std::vector<std::string> expected_txids;
  for (uint64_t round = 0; round < 10; ++round) {
    BlockData block = load_fixture(round);
    ASSERT_EQ(block.round(), round);
    txns += block.txn_count();
    const auto& root = block.tree().root;
    if (const auto* payset = mp::find(root, "payset"))
      for (uint32_t i = 0; i < payset->via.array.size; ++i)
        expected_txids.push_back(
            pg::transaction_id(payset->via.array.ptr[i], *mp::find(root, "block")));
    exporter->receive(block, {});
  }
  exporter->close();
  ASSERT_GT(txns, 0u);

  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header"), "10");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE extra = '{}'"), std::to_string(txns));
  EXPECT_EQ(db.scalar("SELECT (v->>'next-round') FROM metastate WHERE k = 'state'"), "10");
  EXPECT_EQ(db.scalar("SELECT (v->>'version') FROM metastate WHERE k = 'migration'"), "2");
  // Root transactions' txids, in order, as computed from the blocks; all distinct
  // and all 52 base32 characters.
  auto rows = db.rows("SELECT txid FROM txn WHERE extra = '{}' ORDER BY round, intra");
  ASSERT_EQ(rows.size(), expected_txids.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i][0], expected_txids[i]);
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT txid) FROM txn WHERE extra = '{}'"),
            std::to_string(txns));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txid !~ '^[A-Z2-7]{52}$'"), "0");
  // typeenum agrees with the stored transaction; header JSON holds the round.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE typeenum = 0 OR typeenum <> CASE "
                      "txn->'txn'->>'type' WHEN 'pay' THEN 1 WHEN 'keyreg' THEN 2 WHEN 'acfg' "
                      "THEN 3 WHEN 'axfer' THEN 4 WHEN 'afrz' THEN 5 WHEN 'appl' THEN 6 WHEN "
                      "'stpf' THEN 7 WHEN 'hb' THEN 8 END"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header WHERE (header->>'rnd')::bigint IS "
                      "DISTINCT FROM round AND round > 0"),
            "0");
  // The fixtures hold inner transactions: rows of their own, pointing at their root.
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn WHERE extra <> '{}'"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn i WHERE extra <> '{}' AND NOT EXISTS (SELECT 1 "
                      "FROM txn r WHERE r.round = i.round AND r.intra = (i.extra->>'root-intra')"
                      "::int AND r.txid = i.txid)"),
            "0");
}

TEST_F(Postgresql, ResumesFromTheDatabaseAndSkipsCommittedRounds) {
  {
    auto exporter = make_exporter();
    exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
    for (uint64_t round = 0; round < 5; ++round) exporter->receive(generated_block(round, 7), {});
    exporter->close();
  }
  // A data dir whose metadata.json lags: the database says where to resume, and
  // rounds already committed are skipped, not duplicated.
  auto exporter = make_exporter();
  EXPECT_EQ(exporter->round_request(dir_.path()), 5u);
  exporter->init(InitContext{.next_round = 3, .logger = &quiet_}, {});
  exporter->receive(generated_block(3, 7), {});
  exporter->receive(generated_block(4, 7), {});
  exporter->receive(generated_block(5, 7), {});
  exporter->close();
  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header"), "6");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn"), "42");
  EXPECT_EQ(db.scalar("SELECT (v->>'next-round') FROM metastate WHERE k = 'state'"), "6");

  // Starting past the database's next round would leave a gap: refused.
  auto ahead = make_exporter();
  try {
    ahead->init(InitContext{.next_round = 9, .logger = &quiet_}, {});
    FAIL() << "init past the database's next round succeeded";
  } catch (const PluginError& e) {
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("gap"), std::string::npos) << e.what();
  }
  ahead->close();
}

TEST_F(Postgresql, DeleteTaskKeepsTheLastRounds) {
  auto exporter = make_exporter("delete-task = { interval = 4, rounds = 3 }\n");
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  for (uint64_t round = 0; round < 10; ++round) exporter->receive(generated_block(round, 2), {});
  exporter->close();
  Db db(conninfo());
  // Pruned at round 8 (keeping 6, 7, 8); 9 came after.
  EXPECT_EQ(db.scalar("SELECT string_agg(round::text, ',' ORDER BY round) FROM block_header"),
            "6,7,8,9");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round < 6"), "0");
}

TEST_F(Postgresql, RejectsBadConfiguration) {
  EXPECT_THROW(make_exporter("max-conn = 0\n"), ConfigError);
  EXPECT_THROW(make_exporter("delete-task = { interval = -2 }\n"), ConfigError);
  EXPECT_THROW(make_exporter("bogus = 1\n"), ConfigError);
  std::string text =
      "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n[exporter.config]\n"
      "connection-string = \"host='unterminated\"\n";
  Config config = parse_config(text, dir_.path(), "conduit.toml");
  EXPECT_THROW(build_plugins(builtin_registry(), config), ConfigError);
}

// Holds an exclusive lock on txn so the exporter's COPY blocks inside the server:
// only a cancel request (or a terminated backend) can end it.
struct TableLock {
  explicit TableLock(const std::string& conninfo) : db(conninfo) {
    db.exec("BEGIN");
    db.exec("LOCK TABLE txn IN ACCESS EXCLUSIVE MODE");
  }
  void release() { db.exec("ROLLBACK"); }
  Db db;
};

TEST_F(Postgresql, NowCancelsAStatementBlockedInTheServerAndLeavesNothing) {
  std::latch copying(1);
  Logger logger(std::make_unique<CallbackSink>([&](std::string_view line) {
                  if (line.find("copying round 1 ") != std::string_view::npos) copying.count_down();
                }),
                LogLevel::debug);
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .logger = &logger}, {});
  exporter->receive(generated_block(0, 3), {});

  TableLock lock(conninfo());
  std::stop_source stop;
  BlockData block = generated_block(1, 1000);
  auto result = std::async(std::launch::async, [&] {
    try {
      exporter->receive(block, stop.get_token());
      return std::string("returned");
    } catch (const Cancelled&) {
      return std::string("cancelled");
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  });
  copying.wait();
  stop.request_stop();
  EXPECT_EQ(result.get(), "cancelled");  // would hang on the lock without a cancel
  lock.release();

  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header"), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn"), "3");
  EXPECT_EQ(db.scalar("SELECT (v->>'next-round') FROM metastate WHERE k = 'state'"), "1");
  // The same exporter carries on with the round afterwards.
  exporter->receive(block, {});
  exporter->close();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 1"), "1000");
}

TEST_F(Postgresql, ConnectionLossMidRoundIsRetryableAndTheRoundIsRetriedWhole) {
  std::latch copying(1);
  Logger logger(std::make_unique<CallbackSink>([&](std::string_view line) {
                  if (line.find("copying round 1 ") != std::string_view::npos) copying.count_down();
                }),
                LogLevel::debug);
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .logger = &logger}, {});
  exporter->receive(generated_block(0, 3), {});

  TableLock lock(conninfo());
  BlockData block = generated_block(1, 50);
  auto result = std::async(std::launch::async, [&] {
    try {
      exporter->receive(block, {});
      return std::string("returned");
    } catch (const PluginError& e) {
      return std::string(e.retryable() ? "retryable: " : "fatal: ") + e.what();
    } catch (const std::exception& e) {
      return std::string("other: ") + e.what();
    }
  });
  copying.wait();
  Db admin(cluster_->conninfo("postgres"));
  admin.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_name_ +
             "' AND pid <> " + lock.db.scalar("SELECT pg_backend_pid()"));
  std::string outcome = result.get();
  EXPECT_EQ(outcome.rfind("retryable: ", 0), 0u) << outcome;
  lock.release();

  exporter->receive(block, {});  // reconnects, writes the round whole
  exporter->close();
  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 1"), "50");
  EXPECT_EQ(db.scalar("SELECT (v->>'next-round') FROM metastate WHERE k = 'state'"), "2");
}

// ---------------------------------------------------------------------------
// The crash matrix: the conduit binary (generator -> postgresql) stopped in
// every way at seeded points, restarted each time, must leave the same tables
// as one uninterrupted run.

constexpr uint64_t kChainRounds = 60;
constexpr uint64_t kTxnsPerRound = 25;

std::string conduit_toml(const std::string& conninfo) {
  return "log-level = \"debug\"\nretry-count = 0\nretry-delay = \"20ms\"\n"
         "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = " +
         std::to_string(kTxnsPerRound) +
         "\nseed = 42\n[exporter]\nname = \"postgresql\"\n[exporter.config]\n"
         "connection-string = \"" +
         conninfo + "\"\n";
}

std::string committed_line(uint64_t round) {
  return "postgresql: committed round " + std::to_string(round) + " (";
}

// A digest of rounds below `limit`, plus the invariants of the whole tables.
struct TableSummary {
  std::string headers, txns, next_round;
  bool operator==(const TableSummary&) const = default;
};

TableSummary summarise(Db& db, uint64_t limit) {
  std::string where = " WHERE round < " + std::to_string(limit);
  TableSummary s;
  s.headers = db.scalar(
      "SELECT count(*) || ' ' || md5(string_agg(round || '|' || realtime || '|' || rewardslevel "
      "|| '|' || header::text, ',' ORDER BY round)) FROM block_header" +
      where);
  s.txns = db.scalar(
      "SELECT count(*) || ' ' || md5(string_agg(round || '|' || intra || '|' || typeenum || '|' "
      "|| asset || '|' || coalesce(txid, '') || '|' || txn::text || '|' || extra::text, ',' "
      "ORDER BY round, intra)) FROM txn" +
      where);
  return s;
}

void expect_no_gaps(Db& db) {
  // Rounds 0..max, each whole, and metastate one past the last.
  EXPECT_EQ(db.scalar("SELECT count(*) = max(round) + 1 AND min(round) = 0 FROM block_header"),
            "t");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM (SELECT b.round FROM block_header b LEFT JOIN txn t "
                      "USING (round) GROUP BY b.round HAVING count(t.intra) <> " +
                      std::to_string(kTxnsPerRound) + " OR max(t.intra) <> " +
                      std::to_string(kTxnsPerRound - 1) + ") bad"),
            "0");
  EXPECT_EQ(db.scalar("SELECT (SELECT (v->>'next-round')::bigint FROM metastate WHERE k = "
                      "'state') = (SELECT max(round) + 1 FROM block_header)"),
            "t");
}

TEST_F(Postgresql, CrashMatrixLeavesTheTablesOfAnUninterruptedRun) {
  // The uninterrupted reference, in a database of its own.
  {
    Db admin(cluster_->conninfo("postgres"));
    admin.exec("DROP DATABASE IF EXISTS reference");
    admin.exec("CREATE DATABASE reference");
  }
  TempDir reference_dir;
  write_text(reference_dir / "conduit.toml", conduit_toml(cluster_->conninfo("reference")));
  {
    Subprocess conduit({conduit_bin(), "-d", reference_dir.path().string(), "--bus", "none"});
    ASSERT_TRUE(conduit.wait_for_line(committed_line(kChainRounds))) << conduit.output();
    conduit.signal(SIGTERM);
    ASSERT_EQ(conduit.wait(), 0) << conduit.output();
  }

  enum class Action { stop_now, end_of_round, sigkill, server_restart };
  const char* names[] = {"stop now", "end-of-round", "SIGKILL", "server restart"};
  std::mt19937_64 rng(20261124);
  TempDir data_dir;
  write_text(data_dir / "conduit.toml", conduit_toml(conninfo()));
  // A fresh connection each time: a server restart ends old ones.
  auto db_next = [&]() -> uint64_t {
    Db db(conninfo());
    if (db.scalar("SELECT to_regclass('metastate') IS NULL") == "t") return 0;
    std::string v = db.scalar("SELECT (v->>'next-round') FROM metastate WHERE k = 'state'");
    return v.empty() || v == "NULL" ? 0 : std::stoull(v);
  };

  std::unique_ptr<Subprocess> conduit;
  std::vector<Action> actions;
  for (int i = 0; i < 4; ++i)
    for (Action a :
         {Action::stop_now, Action::end_of_round, Action::sigkill, Action::server_restart})
      actions.push_back(a);
  std::shuffle(actions.begin(), actions.end(), rng);
  std::string log;
  for (Action action : actions) {
    if (!conduit)
      conduit = std::make_unique<Subprocess>(
          std::vector<std::string>{conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
    // A seeded point a little past where this run resumed.
    uint64_t target = db_next() + rng() % 4;
    SCOPED_TRACE(std::string(names[static_cast<int>(action)]) + " after round " +
                 std::to_string(target));
    ASSERT_TRUE(conduit->wait_for_line(committed_line(target))) << conduit->output();
    switch (action) {
      case Action::stop_now:
        conduit->signal(SIGTERM);
        ASSERT_EQ(conduit->wait(), 0) << conduit->output();
        break;
      case Action::end_of_round:
        conduit->signal(SIGUSR1);
        ASSERT_EQ(conduit->wait(), 0) << conduit->output();
        break;
      case Action::sigkill:
        conduit->signal(SIGKILL);
        conduit->wait();
        break;
      case Action::server_restart:
        // conduit keeps running: it loses its connection, retries, reconnects.
        cluster_->restart();
        break;
    }
    if (action != Action::server_restart) {
      log += conduit->output();
      conduit.reset();
    }
  }
  // Let the interrupted chain reach the reference's length (or further).
  if (!conduit)
    conduit = std::make_unique<Subprocess>(
        std::vector<std::string>{conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
  uint64_t final_round = std::max(kChainRounds, db_next());
  ASSERT_TRUE(conduit->wait_for_line(committed_line(final_round))) << conduit->output();
  conduit->signal(SIGTERM);
  ASSERT_EQ(conduit->wait(), 0) << conduit->output();

  Db db(conninfo());
  Db reference(cluster_->conninfo("reference"));
  TableSummary expected = summarise(reference, kChainRounds + 1);
  EXPECT_EQ(expected.headers.substr(0, expected.headers.find(' ')),
            std::to_string(kChainRounds + 1));
  EXPECT_EQ(summarise(db, kChainRounds + 1), expected);
  expect_no_gaps(db);
  expect_no_gaps(reference);
  // What the interruptions exercised (timing decides; reported, not asserted).
  log += conduit->output();
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  };
  std::cout << "[ crash matrix ] resumed from the database " << count("as requested by")
            << "x, skipped committed rounds " << count("already committed") << "x, retried "
            << count("; retry ") << "x\n";
  // metadata.json never runs ahead of the database.
  auto checkpoint = checkpoint_round(data_dir.path());
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_LE(*checkpoint, db_next());
}

TEST_F(Postgresql, DaemonResumesFromTheDatabaseAndRejectsAnOverrideBehindIt) {
  TempDir data_dir;
  write_text(data_dir / "conduit.toml", conduit_toml(conninfo()));
  {
    Subprocess conduit({conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
    ASSERT_TRUE(conduit.wait_for_line(committed_line(3))) << conduit.output();
    conduit.signal(SIGTERM);
    ASSERT_EQ(conduit.wait(), 0) << conduit.output();
  }
  auto [status, out] =
      run_command({conduit_bin(), "-d", data_dir.path().string(), "--bus", "none", "-r", "1"});
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("next-round override 1 conflicts with exporter:postgresql"), std::string::npos)
      << out;
  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header WHERE round <= 3"), "4");
  expect_no_gaps(db);

  // A metadata.json that lags the database (as after a SIGKILL between the
  // commit and the checkpoint): the run resumes where the database says.
  uint64_t next =
      std::stoull(db.scalar("SELECT v->>'next-round' FROM metastate WHERE k = 'state'"));
  std::string metadata = read_text(data_dir / "metadata.json");
  std::string key = "\"next-round\":";
  size_t at = metadata.find(key);
  ASSERT_NE(at, std::string::npos) << metadata;
  at += key.size();
  while (metadata[at] == ' ') ++at;
  size_t end = metadata.find_first_not_of("0123456789", at);
  metadata.replace(at, end - at, "1");
  write_text(data_dir / "metadata.json", metadata);
  ASSERT_EQ(checkpoint_round(data_dir.path()), 1u);
  Subprocess conduit({conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(conduit.wait_for_line(committed_line(next + 2))) << conduit.output();
  conduit.signal(SIGTERM);
  ASSERT_EQ(conduit.wait(), 0) << conduit.output();
  EXPECT_NE(conduit.output().find("resuming at round " + std::to_string(next) +
                                  " as requested by exporter:postgresql"),
            std::string::npos)
      << conduit.output();
  EXPECT_EQ(conduit.output().find("committed round 1 ("), std::string::npos);
  expect_no_gaps(db);
}

}  // namespace
