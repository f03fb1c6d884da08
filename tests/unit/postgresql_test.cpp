// The postgresql exporter against a real PostgreSQL: a throw-away cluster made
// with initdb in a temp dir, served on a Unix socket there by a non-root user.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <future>
#include <iostream>
#include <latch>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <tuple>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "core/algorand.hpp"
#include "core/block_msgpack.hpp"
#include "core/config.hpp"
#include "core/encoding.hpp"
#include "core/registry.hpp"
#include "plugins/builtin.hpp"
#include "plugins/postgresql/postgresql.hpp"
#include "test_support.hpp"
#include "v42_block.hpp"

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
  EXPECT_EQ(encoding::base32_encode("foobar"), "MZXW6YTBOI");
  EXPECT_EQ(encoding::base32_encode("fooba"), "MZXW6YTB");
  EXPECT_EQ(encoding::base32_encode("f"), "MY");
  EXPECT_EQ(encoding::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(encoding::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(encoding::base64_encode("foobar"), "Zm9vYmFy");
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

// Indexer's encoding overrides (idb/postgres/internal/encoding/types.go).
TEST(PostgresqlEncoding, IndexerOverridesOfMsgpackFields) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> p(buffer);
  auto bin = [&](std::string_view b) {
    p.pack_bin(static_cast<uint32_t>(b.size()));
    p.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
  };
  std::string address(32, '\x07');
  p.pack_map(4);
  // Asset params: a printable name stays, a non-printable one moves to an64.
  p.pack("apar");
  p.pack_map(2);
  p.pack("an");
  p.pack(std::string("caf\xc3\xa9"));
  p.pack("un");
  p.pack(std::string("\x01x"));
  // Teal key-value: keys and byte values as base64.
  p.pack("gs");
  p.pack_map(1);
  p.pack(std::string("k"));
  p.pack_map(2);
  p.pack("tb");
  p.pack(std::string("v"));
  p.pack("tt");
  p.pack(1);
  // Header: the proposer as its checksummed address.
  p.pack("prp");
  bin(address);
  p.pack("snd");
  bin(address);
  msgpack::object_handle h = msgpack::unpack(buffer.data(), buffer.size());
  const auto& m = h.get();
  EXPECT_EQ(pg::encode_asset_params(*mp::find(m, "apar")),
            "{\"an\":\"caf\xc3\xa9\",\"un64\":\"AXg=\"}");
  msgpack::sbuffer app_buffer;
  msgpack::packer<msgpack::sbuffer> ap(app_buffer);
  ap.pack_map(1);
  ap.pack("gs");
  ap.pack(*mp::find(m, "gs"));
  msgpack::object_handle app = msgpack::unpack(app_buffer.data(), app_buffer.size());
  EXPECT_EQ(pg::encode_app_params(app.get()), "{\"gs\":{\"aw==\":{\"tb\":\"dg==\",\"tt\":1}}}");
  std::string header = pg::encode_block_header(m);
  EXPECT_NE(header.find("\"prp\":\"" + algorand::encode_address(address) + "\""), std::string::npos)
      << header;
  EXPECT_NE(header.find("\"snd\":\"" + encoding::base64_encode(address) + "\""), std::string::npos)
      << header;
  EXPECT_TRUE(pg::printable_utf8("asset #1"));
  EXPECT_FALSE(pg::printable_utf8(std::string("a\0b", 3)));
  EXPECT_FALSE(pg::printable_utf8("\xff"));
}

// The proposer payout row: a payment from the fee sink whose txid is that of
// the same payment as a signed transaction of the block would have.
TEST(PostgresqlEncoding, ProposerPayoutIsASyntheticPaymentFromTheFeeSink) {
  std::string sink(32, '\x01'), proposer(32, '\x02'), gh(32, '\x03');
  auto pack_block = [&](msgpack::sbuffer& buffer) {
    msgpack::packer<msgpack::sbuffer> p(buffer);
    auto bin = [&](std::string_view b) {
      p.pack_bin(static_cast<uint32_t>(b.size()));
      p.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
    };
    p.pack_map(2);
    p.pack("block");
    p.pack_map(6);
    p.pack("fees");
    bin(sink);
    p.pack("gen");
    p.pack("net-v1");
    p.pack("gh");
    bin(gh);
    p.pack("pp");
    p.pack(5000);
    p.pack("prp");
    bin(proposer);
    p.pack("rnd");
    p.pack(7);
    p.pack("delta");
    p.pack_map(0);
  };
  msgpack::sbuffer buffer;
  pack_block(buffer);
  msgpack::object_handle h = msgpack::unpack(buffer.data(), buffer.size());
  pg::RoundRows rows = pg::round_rows(h.get(), 7);
  EXPECT_EQ(rows.txns, 1u);
  EXPECT_EQ(rows.participations, 2u);

  msgpack::sbuffer stib;
  msgpack::packer<msgpack::sbuffer> s(stib);
  auto bin = [&](std::string_view b) {
    s.pack_bin(static_cast<uint32_t>(b.size()));
    s.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
  };
  s.pack_map(2);
  s.pack("hgi");
  s.pack(true);
  s.pack("txn");
  s.pack_map(7);
  s.pack("amt");
  s.pack(5000);
  s.pack("fv");
  s.pack(7);
  s.pack("lv");
  s.pack(7);
  s.pack("note");
  bin("ProposerPayout for Round 7");
  s.pack("rcv");
  bin(proposer);
  s.pack("snd");
  bin(sink);
  s.pack("type");
  s.pack("pay");
  msgpack::object_handle t = msgpack::unpack(stib.data(), stib.size());
  std::string txid = pg::transaction_id(t.get(), *mp::find(h.get(), "block"));
  EXPECT_EQ(rows.txn_copy.substr(0, rows.txn_copy.find('\t', 12)), "7\t0\t1\t0\t" + txid);
  EXPECT_NE(
      rows.txn_copy.find("\"note\":\"" + encoding::base64_encode("ProposerPayout for Round 7")),
      std::string::npos);
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
  void stop() { run_checked({bindir_ + "/pg_ctl", "-D", data(), "-m", "fast", "-w", "stop"}); }
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

std::string next_account_round(Db& db) {
  return db.scalar("SELECT v->>'next_account_round' FROM metastate WHERE k = 'state'");
}

Genesis fixture_genesis() {
  return algorand::parse_genesis(read_text(fixtures_dir() / "genesis.json"));
}

std::filesystem::path source_root() {
  const char* root = std::getenv("CONDUIT_SOURCE_ROOT");
  return root ? root : ".";
}

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
  Genesis genesis = fixture_genesis();
  exporter->init(InitContext{.next_round = 0, .genesis = &genesis, .logger = &quiet_}, {});
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
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txid IS NOT NULL"), std::to_string(txns));
  EXPECT_EQ(db.scalar("SELECT v::text FROM metastate WHERE k = 'state'"),
            "{\"next_account_round\": 10}");
  EXPECT_EQ(db.scalar("SELECT v::text FROM metastate WHERE k = 'migration'"), "{\"next\": 20}");
  // Root transactions' txids (bytea holding the base32 text, as Indexer stores
  // them), in order, as computed from the blocks; all distinct, all 52 characters.
  auto rows = db.rows(
      "SELECT convert_from(txid, 'UTF8') FROM txn WHERE txid IS NOT NULL ORDER BY round, intra");
  ASSERT_EQ(rows.size(), expected_txids.size());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i][0], expected_txids[i]);
  EXPECT_EQ(db.scalar("SELECT count(DISTINCT txid) FROM txn"), std::to_string(txns));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE convert_from(txid, 'UTF8') !~ "
                      "'^[A-Z2-7]{52}$'"),
            "0");
  // typeenum agrees with the stored transaction; header JSON holds the round.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE typeenum = 0 OR typeenum <> CASE "
                      "txn->'txn'->>'type' WHEN 'pay' THEN 1 WHEN 'keyreg' THEN 2 WHEN 'acfg' "
                      "THEN 3 WHEN 'axfer' THEN 4 WHEN 'afrz' THEN 5 WHEN 'appl' THEN 6 WHEN "
                      "'stpf' THEN 7 WHEN 'hb' THEN 8 END"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header WHERE (header->>'rnd')::bigint IS "
                      "DISTINCT FROM round AND round > 0"),
            "0");
  // The fixtures hold inner transactions: rows of their own (txid NULL),
  // pointing at their root through extra's root-intra and root-txid.
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn WHERE txid IS NULL"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn i WHERE txid IS NULL AND NOT EXISTS (SELECT 1 "
                      "FROM txn r WHERE r.round = i.round AND r.intra = (i.extra->>'root-intra')"
                      "::int AND convert_from(r.txid, 'UTF8') = i.extra->>'root-txid')"),
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
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn"), "35");  // round 0's are not written (Indexer)
  EXPECT_EQ(next_account_round(db), "6");

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
  // As Go Conduit: every 4 rounds from the start (next round 4, then 8), keeping
  // the last 3 rounds of txn and txn_participation; block headers stay.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header"), "10");
  EXPECT_EQ(db.scalar("SELECT min(round) FROM txn"), "5");
  EXPECT_EQ(db.scalar("SELECT min(round) FROM txn_participation"), "5");
  EXPECT_EQ(db.scalar("SELECT v->>'oldest_txn_round' FROM metastate WHERE k = 'pruned'"), "5");
  EXPECT_EQ(db.scalar("SELECT v->>'last_pruned' ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$' "
                      "FROM metastate WHERE k = 'pruned'"),
            "t");
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
  // One connection: the round's rows (over 1 MiB with the generator's PQ
  // signatures) must not stream ahead, blocked on the lock, before "copying".
  auto exporter = make_exporter("parallel-copy-bytes = 0\n");
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
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn"), "0");
  EXPECT_EQ(next_account_round(db), "1");
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
  EXPECT_EQ(next_account_round(db), "2");
}

// ---------------------------------------------------------------------------
// The crash matrix: the conduit binary (generator -> postgresql) stopped in
// every way at seeded points, restarted each time, must leave the same tables
// as one uninterrupted run.

constexpr uint64_t kChainRounds = 60;
constexpr uint64_t kTxnsPerRound = 25;

std::string conduit_toml(const std::string& conninfo, uint64_t last_round = kChainRounds) {
  // A finite chain, so that both runs end at the same round and their state
  // tables (accounts, holdings) can be compared whole.
  return "log-level = \"debug\"\nretry-count = 0\nretry-delay = \"20ms\"\n"
         "[importer]\nname = \"generator\"\n[importer.config]\ntxns-per-round = " +
         std::to_string(kTxnsPerRound) + "\nlast-round = " + std::to_string(last_round) +
         "\nseed = 42\n[exporter]\nname = \"postgresql\"\n[exporter.config]\n"
         "connection-string = \"" +
         conninfo + "\"\n";
}

std::string committed_line(uint64_t round) {
  return "postgresql: committed round " + std::to_string(round) + " (";
}

// A digest of rounds below `limit`, plus the invariants of the whole tables.
struct TableSummary {
  std::string headers, txns, participation, accounts, holdings, metastate;
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
      "|| asset || '|' || coalesce(encode(txid, 'hex'), '') || '|' || txn::text || '|' || "
      "extra::text, ',' ORDER BY round, intra)) FROM txn" +
      where);
  s.participation = db.scalar(
      "SELECT count(*) || ' ' || md5(string_agg(encode(addr, 'hex') || '|' || round || '|' || "
      "intra, ',' ORDER BY round, intra, addr)) FROM txn_participation" +
      where);
  // The state tables as of the whole run (both runs end at the same round).
  s.accounts = db.scalar(
      "SELECT count(*) || ' ' || md5(string_agg(encode(addr, 'hex') || '|' || microalgos || '|' "
      "|| deleted || '|' || created_at || '|' || coalesce(keytype, '') || '|' || "
      "account_data::text, ',' ORDER BY addr)) FROM account");
  s.holdings = db.scalar(
      "SELECT count(*) || ' ' || md5(string_agg(encode(addr, 'hex') || '|' || assetid || '|' || "
      "amount || '|' || created_at, ',' ORDER BY addr, assetid)) FROM account_asset");
  s.metastate = db.scalar(
      "SELECT string_agg(k || '=' || v::text, ',' ORDER BY k) FROM metastate WHERE k <> 'pruned'");
  return s;
}

void expect_no_gaps(Db& db) {
  // Rounds 0..max, each whole, and metastate one past the last.
  EXPECT_EQ(db.scalar("SELECT count(*) = max(round) + 1 AND min(round) = 0 FROM block_header"),
            "t");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM (SELECT b.round FROM block_header b LEFT JOIN txn t "
                      "USING (round) WHERE b.round > 0 GROUP BY b.round HAVING count(t.intra) <> " +
                      std::to_string(kTxnsPerRound) + " OR max(t.intra) <> " +
                      std::to_string(kTxnsPerRound - 1) + ") bad"),
            "0");
  EXPECT_EQ(db.scalar("SELECT (SELECT (v->>'next_account_round')::bigint FROM metastate WHERE k "
                      "= 'state') = (SELECT max(round) + 1 FROM block_header)"),
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
  // The interrupted run streams every unit's txn rows over its second
  // connection (the reference does not), so stops and crashes also land
  // between that connection's commit and the unit's.
  write_text(data_dir / "conduit.toml", conduit_toml(conninfo()) + "parallel-copy-bytes = 1\n");
  // A fresh connection each time: a server restart ends old ones.
  auto db_next = [&]() -> uint64_t {
    Db db(conninfo());
    if (db.scalar("SELECT to_regclass('metastate') IS NULL") == "t") return 0;
    std::string v = next_account_round(db);
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
    if (db_next() > kChainRounds) break;  // the finite chain is done
    if (!conduit)
      conduit = std::make_unique<Subprocess>(
          std::vector<std::string>{conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
    // A seeded point a little past where this run resumed.
    uint64_t target = std::min(db_next() + rng() % 4, kChainRounds);
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
  bool started_here = !conduit;
  if (started_here)
    conduit = std::make_unique<Subprocess>(
        std::vector<std::string>{conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
  uint64_t final_round = kChainRounds;
  if (db_next() <= final_round) {
    ASSERT_TRUE(conduit->wait_for_line(committed_line(final_round))) << conduit->output();
  } else if (started_here) {
    // A conduit started just now may not have reached main() yet: a SIGTERM before it blocks
    // its signals is the default action (exit 143), not a stop. The banner follows the block.
    ASSERT_TRUE(conduit->wait_for_line(" starting: data dir ")) << conduit->output();
  }
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
  // The chain is v42-shaped (the generator's default): PQ-signed senders and block loads.
  EXPECT_NE(db.scalar("SELECT count(*) FROM account WHERE keytype = 'pqsig'"), "0");
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn WHERE txn ? 'pqsig'"), "0");
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn WHERE txn->'lsig' ? 'pqsig'"), "0");
  EXPECT_NE(db.scalar("SELECT count(*) FROM block_header WHERE header ? 'ld'"), "0");
  // What the interruptions exercised (timing decides; reported, not asserted).
  log += conduit->output();
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
    return n;
  };
  std::cout << "[ crash matrix ] resumed from the database " << count("as requested by")
            << "x, skipped committed rounds " << count("already committed") << "x, retried "
            << count("; retry ") << "x, removed transactions ahead "
            << count("written ahead of the import state") << "x\n";
  // metadata.json never runs ahead of the database.
  auto checkpoint = checkpoint_round(data_dir.path());
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_LE(*checkpoint, db_next());
}

// Group commit collapses each state row's changes within a unit into one
// upsert: the rows must equal applying the rounds one by one (created_at of the
// first change, closed_at of the last removal, keytype/frozen only where a
// change set them), for rows that existed before the unit and rows it creates.
TEST_F(Postgresql, AUnitLeavesEveryStateRowAsItsRoundsOneByOneWould) {
  using T = pg::StateTable;
  const std::string x = "'\\x01'::bytea", y = "'\\x02'::bytea", z = "'\\x03'::bytea",
                    w = "'\\x04'::bytea";
  std::vector<std::vector<pg::StateChange>> rounds(6);  // rounds 0..5
  auto account = [](std::string algos) { return algos + ", 1, 2, '{\"v\":" + algos + "}'::jsonb"; };
  const std::string closed_account = "0, 0, 0, 'null'::jsonb";
  // Round 1: rows that exist before the unit (rounds 2..5).
  rounds[1] = {{T::account, x, account("100"), false, "'sig'"},
               {T::account, w, account("50"), false, "'lsig'"},
               {T::asset, "10", x + ", '{\"p\":1}'::jsonb", false, {}},
               {T::account_asset, x + ", 10", "5", false, "TRUE"},
               {T::app_box, "20, '\\x61'::bytea", "'\\x7631'::bytea", false, {}}};
  rounds[2] = {{T::account, x, closed_account, true, {}},
               {T::account, y, closed_account, true, "'msig'"},
               {T::asset, "10", x + ", 'null'::jsonb", true, {}},
               {T::asset, "11", y + ", '{\"p\":11}'::jsonb", false, {}},
               {T::account_asset, x + ", 10", "0", true, {}},
               {T::account_asset, y + ", 10", "7", false, "TRUE"},
               {T::app, "20", x + ", '{\"a\":1}'::jsonb", false, {}},
               {T::app_box, "20, '\\x61'::bytea", "", true, {}},
               {T::app_box, "20, '\\x62'::bytea", "'\\x62'::bytea", false, {}}};
  rounds[3] = {{T::account, x, account("30"), false, "NULL::varchar"},
               {T::account, y, account("31"), false, {}},
               {T::account, z, account("32"), false, {}},
               {T::asset, "10", x + ", '{\"p\":3}'::jsonb", false, {}},
               {T::asset, "11", y + ", 'null'::jsonb", true, {}},
               {T::account_asset, y + ", 10", "0", true, {}},
               {T::account_asset, z + ", 10", "0", true, {}},
               {T::account_app, x + ", 20", "'{\"l\":3}'::jsonb", false, {}},
               {T::app_box, "20, '\\x61'::bytea", "'\\x7633'::bytea", false, {}}};
  rounds[4] = {{T::account, x, account("40"), false, {}},
               {T::account, z, account("42"), false, {}},
               {T::account, w, account("44"), false, {}},
               {T::account_asset, y + ", 10", "8", false, "FALSE"},
               {T::app, "20", x + ", 'null'::jsonb", true, {}},
               {T::account_app, x + ", 20", "'null'::jsonb", true, {}},
               {T::app_box, "20, '\\x62'::bytea", "", true, {}}};
  rounds[5] = {{T::account, y, closed_account, true, {}},
               {T::account_app, x + ", 20", "'{\"l\":5}'::jsonb", false, {}},
               {T::app_box, "20, '\\x63'::bytea", "", true, {}}};
  auto round_rows = [&](uint64_t round) {
    pg::RoundRows rows;
    rows.round = round;
    rows.header_tuple =
        "(" + std::to_string(round) + ", to_timestamp(0) AT TIME ZONE 'UTC', 0, '{}'::jsonb)";
    rows.accounts_state = "{\"r\":" + std::to_string(round) + "}";
    rows.changes = rounds[round];
    return rows;
  };

  Db db(conninfo());
  for (const char* schema : {"by_round", "by_unit"})
    db.exec(std::string("CREATE SCHEMA ") + schema + "; SET search_path TO " + schema + "; " +
            pg::kIndexerSchema);
  db.exec("SET search_path TO by_round");
  for (uint64_t round = 1; round <= 5; ++round) {
    pg::UnitRows unit;
    unit.add(round_rows(round));
    db.exec(unit.statements());
  }
  db.exec("SET search_path TO by_unit");
  pg::UnitRows first, rest;
  first.add(round_rows(1));
  db.exec(first.statements());
  for (uint64_t round = 2; round <= 5; ++round) rest.add(round_rows(round));
  db.exec(rest.statements());

  for (const char* table :
       {"account ORDER BY addr", "asset ORDER BY index", "account_asset ORDER BY addr, assetid",
        "app ORDER BY index", "account_app ORDER BY addr, app", "app_box ORDER BY app, name",
        "block_header ORDER BY round", "metastate ORDER BY k"}) {
    auto by_round = db.rows(std::string("SELECT * FROM by_round.") + table);
    auto by_unit = db.rows(std::string("SELECT * FROM by_unit.") + table);
    EXPECT_FALSE(by_round.empty()) << table;
    EXPECT_EQ(by_unit, by_round) << table;
  }
  // Spot checks that the scenario covers what it claims.
  db.exec("SET search_path TO by_unit");
  EXPECT_EQ(
      db.rows("SELECT created_at, closed_at, deleted, keytype FROM account WHERE addr = " + x),
      (std::vector<std::vector<std::string>>{{"1", "2", "f", "NULL"}}));
  EXPECT_EQ(
      db.rows("SELECT created_at, closed_at, deleted, keytype FROM account WHERE addr = " + y),
      (std::vector<std::vector<std::string>>{{"2", "5", "t", "msig"}}));
  EXPECT_EQ(db.rows("SELECT keytype FROM account WHERE addr = " + w),
            (std::vector<std::vector<std::string>>{{"lsig"}}));
  EXPECT_EQ(db.rows("SELECT amount, frozen, deleted, closed_at FROM account_asset ORDER BY addr"),
            (std::vector<std::vector<std::string>>{
                {"0", "t", "t", "2"}, {"8", "f", "f", "3"}, {"0", "f", "t", "3"}}));
}

TEST_F(Postgresql, DaemonResumesFromTheDatabaseAndRejectsAnOverrideBehindIt) {
  TempDir data_dir;
  // A chain longer than the first run can commit in one unit, so that the
  // resumed run has rounds left to commit after the database's next round.
  write_text(data_dir / "conduit.toml", conduit_toml(conninfo(), 1000000));
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
  uint64_t next = std::stoull(next_account_round(db));
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

// ---------------------------------------------------------------------------
// Indexer's database: schema, rows from the fixtures' deltas, Indexer API queries.

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kHex[static_cast<uint8_t>(c) >> 4];
    out += kHex[static_cast<uint8_t>(c) & 15];
  }
  return out;
}

std::string_view raw(const msgpack::object* v) {
  if (!v) return {};
  if (v->type == msgpack::type::BIN) return {v->via.bin.ptr, v->via.bin.size};
  if (v->type == msgpack::type::STR) return {v->via.str.ptr, v->via.str.size};
  return {};
}
bool flag(const msgpack::object* map, std::string_view key) {
  const auto* v = map ? mp::find(*map, key) : nullptr;
  return v && v->type == msgpack::type::BOOLEAN && v->via.boolean;
}
std::vector<std::string> column(Db& db, const std::string& sql) {
  std::vector<std::string> out;
  for (auto& row : db.rows(sql)) out.push_back(row.at(0));
  return out;
}

TEST_F(Postgresql, SchemaEqualsIndexersSetupPostgresSql) {
  {
    Db admin(cluster_->conninfo("postgres"));
    admin.exec("DROP DATABASE IF EXISTS indexer_schema");
    admin.exec("CREATE DATABASE indexer_schema");
  }
  Db indexer(cluster_->conninfo("indexer_schema"));
  indexer.exec(read_text(source_root() / "tests/data/indexer/setup_postgres.sql"));
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->close();
  Db ours(conninfo());

  const std::string columns =
      "SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || "
      "character_maximum_length || ')', '') || coalesce(' ' || numeric_precision || ',' || "
      "numeric_scale, '') || ' null=' || is_nullable || ' ' || coalesce(column_default, '') "
      "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1";
  auto expected = column(indexer, columns);
  ASSERT_GE(expected.size(), 50u);  // ten tables' worth
  EXPECT_EQ(column(ours, columns), expected);
  const std::string tables =
      "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
      "WHERE table_schema = 'public'";
  EXPECT_EQ(ours.scalar(tables), indexer.scalar(tables));
  EXPECT_EQ(indexer.scalar(tables),
            "account,account_app,account_asset,app,app_box,asset,block_header,metastate,txn,"
            "txn_participation");
  const std::string indexes =
      "SELECT regexp_replace(indexdef, '\\s+', ' ', 'g') FROM pg_indexes WHERE schemaname = "
      "'public' ORDER BY indexname";
  EXPECT_EQ(column(ours, indexes), column(indexer, indexes));
  const std::string constraints =
      "SELECT table_name || ' ' || constraint_type FROM information_schema.table_constraints "
      "WHERE table_schema = 'public' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE') ORDER BY 1";
  EXPECT_EQ(column(ours, constraints), column(indexer, constraints));
}

// The state the fixtures' deltas describe, gathered here straight from the
// msgpack (no exporter code), and compared with the tables.
// Group commit with overlap, as the pipeline runs a backlog: every fixture
// round prepared (rows built on another thread and kept with the block), then
// staged in one unit. The tables equal those of one round per commit.
TEST_F(Postgresql, FixturesInOneUnitOfPreparedRoundsEqualOneRoundPerCommit) {
  CONDUIT_REQUIRE_FIXTURES();
  Genesis genesis = fixture_genesis();
  Db db(conninfo());
  db.exec("CREATE SCHEMA by_round; CREATE SCHEMA by_unit; CREATE SCHEMA streamed");
  auto exporter_in = [&](const std::string& schema, const std::string& extra = "") {
    std::string text =
        "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n"
        "[exporter.config]\nconnection-string = \"" +
        conninfo() + " options='-csearch_path=" + schema + "'\"\n" + extra;
    Config config = parse_config(text, dir_.path(), "conduit.toml");
    auto exporter = std::move(build_plugins(builtin_registry(), config).exporter);
    exporter->init(InitContext{.next_round = 0, .genesis = &genesis, .logger = &quiet_}, {});
    return exporter;
  };
  auto by_round = exporter_in("by_round");
  for (uint64_t round = 0; round < 10; ++round) by_round->receive(load_fixture(round), {});
  by_round->close();

  auto by_unit = exporter_in("by_unit");
  ASSERT_TRUE(by_unit->supports_units());
  std::vector<BlockData> blocks;
  for (uint64_t round = 0; round < 10; ++round) {
    blocks.push_back(load_fixture(round));
    std::thread([&] { by_unit->prepare(blocks.back()); }).join();
    EXPECT_NE(blocks.back().encoded("postgresql-rows"), nullptr) << round;
  }
  for (const auto& block : blocks) by_unit->stage(block, {});
  by_unit->commit_unit({});
  by_unit->close();

  // The same unit with its txn rows streamed over the second connection from
  // the first round on (parallel-copy-bytes = 1).
  auto streamed = exporter_in("streamed", "parallel-copy-bytes = 1\n");
  for (auto& block : blocks) streamed->stage(block, {});
  EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = '" + db_name_ +
                      "' AND query LIKE 'COPY txn %'"),
            "1");  // streaming before the unit commits
  streamed->commit_unit({});
  streamed->close();

  for (const char* table :
       {"block_header ORDER BY round", "txn ORDER BY round, intra",
        "txn_participation ORDER BY addr, round, intra", "account ORDER BY addr",
        "asset ORDER BY index", "account_asset ORDER BY addr, assetid", "app ORDER BY index",
        "account_app ORDER BY addr, app", "app_box ORDER BY app, name", "metastate ORDER BY k"}) {
    auto expected = db.rows(std::string("SELECT * FROM by_round.") + table);
    EXPECT_FALSE(expected.empty()) << table;
    EXPECT_EQ(db.rows(std::string("SELECT * FROM by_unit.") + table), expected) << table;
    EXPECT_EQ(db.rows(std::string("SELECT * FROM streamed.") + table), expected) << table;
  }
}

// Prepared rows survive their bytes unchanged; bytes they were not made from are refused.
TEST(PostgresqlRows, PreparedRowsRoundTrip) {
  pg::RoundRows rows;
  rows.round = 7;
  rows.header_tuple = "(7, x)";
  rows.accounts_state = "{}";
  rows.txn_copy = std::string("a\tb\n\0c", 7);
  rows.participation_copy = "p";
  rows.txns = 3;
  rows.participations = 4;
  rows.changes = {{pg::StateTable::account, "k1", "v1", true, "'sig'"},
                  {pg::StateTable::app_box, "k2", "", false, std::nullopt}};
  std::string bytes = pg::serialize_round_rows(rows);
  pg::RoundRows back = pg::parse_round_rows(bytes);
  EXPECT_EQ(back.round, 7u);
  EXPECT_EQ(back.header_tuple, rows.header_tuple);
  EXPECT_EQ(back.accounts_state, rows.accounts_state);
  EXPECT_EQ(back.txn_copy, rows.txn_copy);
  EXPECT_EQ(back.participation_copy, "p");
  EXPECT_EQ(back.txns, 3u);
  EXPECT_EQ(back.participations, 4u);
  ASSERT_EQ(back.changes.size(), 2u);
  EXPECT_EQ(back.changes[0].table, pg::StateTable::account);
  EXPECT_EQ(back.changes[0].key, "k1");
  EXPECT_EQ(back.changes[0].values, "v1");
  EXPECT_TRUE(back.changes[0].removed);
  EXPECT_EQ(back.changes[0].side, std::optional<std::string>("'sig'"));
  EXPECT_EQ(back.changes[1].table, pg::StateTable::app_box);
  EXPECT_FALSE(back.changes[1].removed);
  EXPECT_FALSE(back.changes[1].side.has_value());
  EXPECT_THROW(pg::parse_round_rows(bytes.substr(0, bytes.size() - 1)), std::runtime_error);
  EXPECT_THROW(pg::parse_round_rows(bytes + "x"), std::runtime_error);
}

TEST_F(Postgresql, FixtureStateEqualsWhatTheDeltasDescribe) {
  CONDUIT_REQUIRE_FIXTURES();
  Genesis genesis = fixture_genesis();
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .genesis = &genesis, .logger = &quiet_}, {});

  struct Account {
    uint64_t algos;
    uint64_t created;
  };
  std::map<std::string, Account> accounts;  // hex address
  auto doc = nlohmann::json::parse(genesis.json);
  for (const auto& alloc : doc["alloc"])
    accounts[hex(*algorand::decode_address(alloc["addr"].get<std::string>()))] = {
        alloc["state"].value("algo", uint64_t{0}), 0};
  std::map<std::pair<std::string, uint64_t>, std::string> holdings;  // amount or "deleted"
  std::map<uint64_t, std::pair<std::string, bool>> assets, apps;     // creator, deleted
  std::map<std::pair<std::string, uint64_t>, bool> locals;           // deleted
  std::map<std::pair<uint64_t, std::string>, std::string> boxes;     // value hex or "deleted"
  size_t inner_txns = 0;
  std::string some_txid, some_sender;

  for (uint64_t round = 0; round < 10; ++round) {
    BlockData block = load_fixture(round);
    exporter->receive(block, {});
    const auto& root = block.tree().root;
    if (const auto* payset = mp::find(root, "payset")) {
      for (uint32_t i = 0; i < payset->via.array.size; ++i) {
        const auto& stib = payset->via.array.ptr[i];
        if (const auto* dt = mp::find(stib, "dt"))
          if (const auto* itx = mp::find(*dt, "itx")) inner_txns += itx->via.array.size;
        if (round == 3 && i == 7) {
          some_txid = pg::transaction_id(stib, *mp::find(root, "block"));
          some_sender = hex(raw(mp::find(*mp::find(stib, "txn"), "snd")));
        }
      }
    }
    const auto* delta = mp::find(root, "delta");
    if (!delta) continue;
    const auto* accts = mp::find(*delta, "Accts");
    if (const auto* list = mp::find(*accts, "Accts"))
      for (uint32_t i = 0; i < list->via.array.size; ++i) {
        const auto& r = list->via.array.ptr[i];
        std::string addr = hex(raw(mp::find(r, "Addr")));
        auto it = accounts.find(addr);
        uint64_t created = it == accounts.end() ? round : it->second.created;
        accounts[addr] = {mp::get_uint(r, "MicroAlgos"), created};
      }
    if (const auto* list = mp::find(*accts, "AssetResources"))
      for (uint32_t i = 0; i < list->via.array.size; ++i) {
        const auto& r = list->via.array.ptr[i];
        std::string addr = hex(raw(mp::find(r, "Addr")));
        uint64_t id = mp::get_uint(r, "Aidx");
        const auto* params = mp::find(r, "Params");
        if (flag(params, "Deleted"))
          assets[id] = {addr, true};
        else if (const auto* p = mp::find(*params, "Params"); p && p->type == msgpack::type::MAP)
          assets[id] = {addr, false};
        const auto* holding = mp::find(r, "Holding");
        if (flag(holding, "Deleted"))
          holdings[{addr, id}] = "deleted";
        else if (const auto* h = mp::find(*holding, "Holding"); h && h->type == msgpack::type::MAP)
          holdings[{addr, id}] = std::to_string(mp::get_uint(*h, "a"));
      }
    if (const auto* list = mp::find(*accts, "AppResources"))
      for (uint32_t i = 0; i < list->via.array.size; ++i) {
        const auto& r = list->via.array.ptr[i];
        std::string addr = hex(raw(mp::find(r, "Addr")));
        uint64_t id = mp::get_uint(r, "Aidx");
        const auto* params = mp::find(r, "Params");
        if (flag(params, "Deleted"))
          apps[id] = {addr, true};
        else if (const auto* p = mp::find(*params, "Params"); p && p->type == msgpack::type::MAP)
          apps[id] = {addr, false};
        const auto* state = mp::find(r, "State");
        if (flag(state, "Deleted"))
          locals[{addr, id}] = true;
        else if (const auto* l = mp::find(*state, "LocalState"); l && l->type == msgpack::type::MAP)
          locals[{addr, id}] = false;
      }
    if (const auto* kv = mp::find(*delta, "KvMods"); kv && kv->type == msgpack::type::MAP)
      for (uint32_t i = 0; i < kv->via.map.size; ++i) {
        std::string_view key = raw(&kv->via.map.ptr[i].key);
        ASSERT_EQ(key.substr(0, 3), "bx:");
        uint64_t app = 0;
        for (size_t k = 3; k < 11; ++k) app = app << 8 | static_cast<uint8_t>(key[k]);
        const auto* data = mp::find(kv->via.map.ptr[i].val, "Data");
        boxes[{app, hex(key.substr(11))}] =
            data && data->type == msgpack::type::BIN ? hex(raw(data)) : "deleted";
      }
  }
  exporter->close();
  ASSERT_GT(holdings.size(), 10u);
  ASSERT_GT(apps.size(), 3u);
  ASSERT_GT(locals.size(), 3u);
  ASSERT_GT(boxes.size(), 3u);
  ASSERT_GT(inner_txns, 0u);

  Db db(conninfo());
  std::map<std::string, Account> stored;
  for (auto& row : db.rows("SELECT encode(addr, 'hex'), microalgos, created_at, deleted FROM "
                           "account"))
    stored[row[0]] = {std::stoull(row[1]), std::stoull(row[2])};
  ASSERT_EQ(stored.size(), accounts.size());
  for (const auto& [addr, account] : accounts) {
    SCOPED_TRACE("account " + addr);
    ASSERT_TRUE(stored.count(addr));
    EXPECT_EQ(stored[addr].algos, account.algos);
    EXPECT_EQ(stored[addr].created, account.created);
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM account WHERE deleted <> (microalgos = 0)"), "0");
  std::map<std::pair<std::string, uint64_t>, std::string> stored_holdings;
  for (auto& row : db.rows("SELECT encode(addr, 'hex'), assetid, CASE WHEN deleted THEN "
                           "'deleted' ELSE amount::text END FROM account_asset"))
    stored_holdings[{row[0], std::stoull(row[1])}] = row[2];
  EXPECT_EQ(stored_holdings, holdings);
  std::map<uint64_t, std::pair<std::string, bool>> stored_assets, stored_apps;
  for (auto& row : db.rows("SELECT index, encode(creator_addr, 'hex'), deleted FROM asset"))
    stored_assets[std::stoull(row[0])] = {row[1], row[2] == "t"};
  for (auto& row : db.rows("SELECT index, encode(creator, 'hex'), deleted FROM app"))
    stored_apps[std::stoull(row[0])] = {row[1], row[2] == "t"};
  EXPECT_EQ(stored_assets, assets);
  EXPECT_EQ(stored_apps, apps);
  std::map<std::pair<std::string, uint64_t>, bool> stored_locals;
  for (auto& row : db.rows("SELECT encode(addr, 'hex'), app, deleted FROM account_app"))
    stored_locals[{row[0], std::stoull(row[1])}] = row[2] == "t";
  EXPECT_EQ(stored_locals, locals);
  std::map<std::pair<uint64_t, std::string>, std::string> stored_boxes;
  for (auto& row : db.rows("SELECT app, encode(name, 'hex'), encode(value, 'hex') FROM app_box"))
    stored_boxes[{std::stoull(row[0]), row[1]}] = row[2];
  for (auto it = boxes.begin(); it != boxes.end();)
    it = it->second == "deleted" ? boxes.erase(it) : std::next(it);
  EXPECT_EQ(stored_boxes, boxes);

  // Rows and encodings as Indexer writes them.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txid IS NULL"), std::to_string(inner_txns));
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txid IS NULL AND (extra->'root-intra') IS "
                      "NULL OR jsonb_typeof(extra->'root-intra') = 'number'"),
            "0");  // root-intra is a JSON string (Indexer's OptionalUint)
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txn ? 'hgi' OR NOT (txn->'txn' ? 'gh')"
                      " AND txid IS NOT NULL"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE txid IS NULL AND txn->'dt' ? 'itx'"), "0");
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn WHERE extra ? 'aca'"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE length(decode(txn->'txn'->>'snd', "
                      "'base64')) <> 32"),
            "0");
  EXPECT_EQ(db.scalar("SELECT v::text FROM metastate WHERE k = 'network'"),
            "{\"genesis-hash\": \"" + genesis.hash + "\"}");
  EXPECT_EQ(db.scalar("SELECT encode(decode(v->>'FeeSink', 'base64'), 'hex') FROM metastate "
                      "WHERE k = 'accounts'"),
            hex(*algorand::decode_address(doc["fees"].get<std::string>())));
  // Every participation row points at a transaction that names the address
  // (its own JSON, or for a root its inner transactions'), and every address a
  // transaction names has a row.
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn_participation"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn_participation p LEFT JOIN txn t USING (round, "
                      "intra) WHERE t.txn IS NULL OR position(encode(p.addr, 'base64') IN "
                      "t.txn::text) = 0"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn t WHERE NOT EXISTS (SELECT 1 FROM "
                      "txn_participation p WHERE p.round = t.round AND p.intra = t.intra AND "
                      "encode(p.addr, 'base64') = t.txn->'txn'->>'snd')"),
            "0");

  // Typical Indexer API queries.
  EXPECT_EQ(db.scalar("SELECT round || '/' || intra FROM txn WHERE txid = '" + some_txid + "'"),
            db.scalar("SELECT round || '/' || intra FROM txn WHERE round = 3 AND txid IS NOT NULL "
                      "ORDER BY intra OFFSET 7 LIMIT 1"));
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn_participation p JOIN txn t ON t.round = p.round "
                      "AND t.intra = p.intra WHERE p.addr = '\\x" +
                      some_sender + "' AND p.round <= 5"),
            "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 4"),
            std::to_string(load_fixture(4).txn_count() +
                           std::stoul(db.scalar("SELECT count(*) FROM txn WHERE round = 4 AND "
                                                "txid IS NULL"))));
  auto [app_id, app_creator] = *apps.begin();
  EXPECT_EQ(
      db.scalar("SELECT jsonb_typeof(params) FROM app WHERE index = " + std::to_string(app_id)),
      app_creator.second ? "null" : "object");
  auto box = *boxes.begin();
  EXPECT_EQ(
      db.scalar("SELECT encode(value, 'hex') FROM app_box WHERE app = " +
                std::to_string(box.first.first) + " AND name = '\\x" + box.first.second + "'"),
      box.second);
  auto holding = *holdings.begin();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM account_asset WHERE addr = '\\x" + holding.first.first +
                      "' AND NOT deleted") != "0",
            true);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM account WHERE jsonb_typeof(account_data) <> CASE "
                      "WHEN deleted THEN 'null' ELSE 'object' END"),
            "0");
}

TEST_F(Postgresql, ARoundWithoutADeltaIsAClearError) {
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->receive(generated_block(0, 3), {});
  std::string text =
      "[importer]\nname = \"generator\"\n[importer.config]\nstate-delta = false\n"
      "txns-per-round = 3\n[exporter]\nname = \"noop\"\n";
  TempDir dir;
  Config config = parse_config(text, dir.path(), "conduit.toml");
  auto importer = std::move(build_plugins(builtin_registry(), config).importer);
  importer->init(InitContext{.next_round = 1}, {});
  try {
    exporter->receive(importer->get_block(1, {}), {});
    FAIL() << "a round without a delta was accepted";
  } catch (const PluginError& e) {
    EXPECT_FALSE(e.retryable());
    std::string message = e.what();
    EXPECT_NE(message.find("no ledger state delta"), std::string::npos) << message;
    EXPECT_NE(message.find("follower"), std::string::npos) << message;
  }
  exporter->close();
  Db db(conninfo());
  EXPECT_EQ(next_account_round(db), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header"), "1");
}

// Consensus v42 as Indexer's newest writer stores it: a sender that signs with
// `pqsig`, or whose logic signature a PQ account delegated (`lsig.pqsig`), gets
// the key type "pqsig" (the sdk's indexer models list it in sig-type); the
// signature is kept in the txn JSON as go-codec writes the sdk's PQSig (scheme
// and bytes base64, salt a number, omitted when 0), inner rows included; the
// header JSON keeps `ld`. Inner transactions set no key type, as before.
TEST_F(Postgresql, V42PqSignersGetTheirKeyTypeAndTheirSignaturesAreStored) {
  auto exporter = make_exporter();
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->receive(generated_block(0, 0), {});
  exporter->receive(BlockData::decode_msgpack(v42::block_msgpack()), {});
  exporter->close();

  Db db(conninfo());
  auto addr = [](int account) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'\\x";
    for (unsigned char c : v42::address(account)) {
      out += hex[c >> 4];
      out += hex[c & 15];
    }
    return out + "'::bytea";
  };
  auto keytype = [&](int account) {
    return db.scalar("SELECT coalesce(keytype, 'NULL') FROM account WHERE addr = " + addr(account));
  };
  EXPECT_EQ(keytype(v42::pq_sender), "pqsig");
  EXPECT_EQ(keytype(v42::lsig_sender), "pqsig");
  EXPECT_EQ(keytype(v42::receiver), "NULL");
  EXPECT_EQ(keytype(v42::app_account), "NULL");

  auto b64 = [](const std::string& bytes) { return encoding::base64_encode(bytes); };
  auto pq = [&](int key, int sig, bool salted) {
    nlohmann::json j = {
        {"pk", b64(v42::public_key(key))}, {"sch", "ZjE="}, {"sig", b64(v42::signature(sig))}};
    if (salted) j["slt"] = 7;
    return j;
  };
  auto json_at = [&](int intra, const std::string& path) {
    return nlohmann::json::parse(
        db.scalar("SELECT (txn #> '{" + path +
                  "}')::text FROM txn WHERE round = 1 AND intra = " + std::to_string(intra)));
  };
  EXPECT_EQ(json_at(0, "pqsig"), pq(1, 1, true));
  EXPECT_EQ(json_at(1, "lsig,pqsig"), pq(2, 2, false));
  EXPECT_EQ(json_at(1, "lsig,l"), "CoEB");
  EXPECT_EQ(json_at(2, "pqsig"), pq(1, 3, true));
  EXPECT_EQ(json_at(2, "dt,itx,0,pqsig"), pq(4, 4, true));
  EXPECT_EQ(json_at(3, "pqsig"), pq(4, 4, true));  // the inner row
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 1"), "4");
  EXPECT_EQ(db.scalar("SELECT string_agg(intra::text, ',' ORDER BY intra) FROM "
                      "txn_participation WHERE round = 1 AND addr = " +
                      addr(v42::pq_sender)),
            "0,2");
  EXPECT_EQ(db.scalar("SELECT header->>'ld' FROM block_header WHERE round = 1"),
            std::to_string(v42::kLoad));
}

TEST_F(Postgresql, RefusesADatabaseOfTheOlderConduitSchema) {
  {
    Db db(conninfo());
    db.exec("CREATE TABLE metastate (k text PRIMARY KEY, v jsonb NOT NULL)");
    db.exec(
        "INSERT INTO metastate VALUES ('migration', '{\"version\": 2}'), ('state', "
        "'{\"next-round\": 7}')");
  }
  auto exporter = make_exporter();
  try {
    exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
    FAIL() << "an older conduit's database was accepted";
  } catch (const PluginError& e) {
    EXPECT_FALSE(e.retryable());
    EXPECT_NE(std::string(e.what()).find("older conduit"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("new, empty database"), std::string::npos) << e.what();
  }
  exporter->close();
}

TEST_F(Postgresql, ContinuesADatabaseIndexerCreatedAndRefusesAnUnfinishedMigration) {
  CONDUIT_REQUIRE_FIXTURES();
  Genesis genesis = fixture_genesis();
  {
    Db db(conninfo());
    db.exec(read_text(source_root() / "tests/data/indexer/setup_postgres.sql"));
    // What Indexer's init and LoadGenesis leave (metastate keys and formats).
    db.exec(
        "INSERT INTO metastate VALUES ('migration', '{\"next\": 20}'), ('network', "
        "'{\"genesis-hash\": \"" +
        genesis.hash + "\"}'), ('state', '{\"next_account_round\": 0}')");
  }
  auto exporter = make_exporter();
  EXPECT_EQ(exporter->round_request(dir_.path()), 0u);
  exporter->init(InitContext{.next_round = 0, .genesis = &genesis, .logger = &quiet_}, {});
  for (uint64_t round = 0; round < 3; ++round) exporter->receive(load_fixture(round), {});
  exporter->close();
  Db db(conninfo());
  EXPECT_EQ(next_account_round(db), "3");
  EXPECT_NE(db.scalar("SELECT count(*) FROM account"), "0");

  auto again = make_exporter();
  EXPECT_EQ(again->round_request(dir_.path()), 3u);
  again->close();

  db.exec("UPDATE metastate SET v = '{\"next\": 19}' WHERE k = 'migration'");
  auto behind = make_exporter();
  try {
    behind->init(InitContext{.next_round = 3, .genesis = &genesis, .logger = &quiet_}, {});
    FAIL() << "an unfinished Indexer migration was accepted";
  } catch (const PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("run Indexer"), std::string::npos) << e.what();
  }
  behind->close();
}

// ---------------------------------------------------------------------------
// `now` interrupts every blocking point of the exporter. A
// server that never answers would otherwise hold it for TCP timeouts (minutes):
// each test asserts the call returns within a deadline far below those.

constexpr auto kPromptly = std::chrono::seconds(10);

int listen_tcp(int backlog, uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0)
    throw std::runtime_error("listen failed");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

// Sockets of this process's host connected (or connecting) to 127.0.0.1:port.
size_t sockets_to(uint16_t port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  char needle[16];
  std::snprintf(needle, sizeof needle, "0100007F:%04X", port);
  size_t n = 0;
  std::getline(tcp, line);
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote;
    fields >> slot >> local >> remote;
    if (remote == needle) ++n;
  }
  return n;
}

template <class Predicate>
bool eventually(Predicate done, std::chrono::seconds within = kPromptly) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling an event, bounded
  }
  return true;
}

// A TCP front for the test cluster: relays connections to the real server
// until frozen; then relays nothing more, and accepts new connections and
// never answers them (a server that hangs).
class Proxy {
 public:
  explicit Proxy(std::string unix_socket) : socket_path_(std::move(unix_socket)) {
    listen_fd_ = listen_tcp(16, port_);
    thread_ = std::thread([this] { run(); });
  }
  ~Proxy() {
    done_ = true;
    thread_.join();
    for (auto& [a, b] : pairs_) {
      ::close(a);
      if (b >= 0) ::close(b);
    }
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  void freeze() { frozen_ = true; }
  size_t accepted() const { return accepted_; }
  size_t bytes_while_frozen() const { return frozen_bytes_; }
  // Ends every relayed connection (the server side too).
  void drop_all() { drop_ = true; }

 private:
  void run() {
    std::vector<char> buffer(65536);
    while (!done_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      {
        for (auto& [a, b] : pairs_) {
          fds.push_back({a, static_cast<short>(frozen_ ? 0 : POLLIN), 0});
          fds.push_back({b, static_cast<short>(frozen_ || b < 0 ? 0 : POLLIN), 0});
        }
      }
      ::poll(fds.data(), fds.size(), 5);
      if (drop_) {
        for (auto& [a, b] : pairs_) {
          ::close(a);
          if (b >= 0) ::close(b);
        }
        pairs_.clear();
        drop_ = false;
        continue;
      }
      if (fds[0].revents & POLLIN) {
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client >= 0) {
          int server = -1;
          if (!frozen_) {
            server = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path_.c_str());
            if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
              ::close(server);
              server = -1;
            }
          }
          pairs_.emplace_back(client, server);
          ++accepted_;
        }
      }
      if (frozen_) {
        // Count what clients send (without relaying it): the event tests wait on.
        for (auto& [a, b] : pairs_) {
          char probe[4096];
          ssize_t n = ::recv(a, probe, sizeof probe, MSG_DONTWAIT | MSG_PEEK);
          if (n > 0) frozen_bytes_ = std::max(frozen_bytes_.load(), static_cast<size_t>(n));
        }
        continue;
      }
      // Only the pairs polled above (one may have been accepted since).
      for (size_t i = 0; i < (fds.size() - 1) / 2; ++i) {
        auto [a, b] = pairs_[i];
        if (b < 0) continue;
        for (auto [from, to, revents] :
             {std::tuple{a, b, fds[1 + 2 * i].revents}, std::tuple{b, a, fds[2 + 2 * i].revents}}) {
          if (!(revents & (POLLIN | POLLHUP))) continue;
          ssize_t n = ::read(from, buffer.data(), buffer.size());
          if (n > 0) [[maybe_unused]]
            auto w = ::write(to, buffer.data(), static_cast<size_t>(n));
        }
      }
    }
  }

  std::string socket_path_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::pair<int, int>> pairs_;  // only touched by the proxy thread
  std::atomic<bool> done_{false}, frozen_{false}, drop_{false};
  std::atomic<size_t> accepted_{0}, frozen_bytes_{0};
};

// Runs `call` on a thread, fires `stop` once `ready` holds, and reports whether
// the call ended (with Cancelled) within kPromptly.
template <class Call, class Ready>
std::string stop_when(Call call, Ready ready) {
  std::stop_source stop;
  auto result = std::async(std::launch::async, [&] {
    try {
      call(stop.get_token());
      return std::string("returned");
    } catch (const Cancelled&) {
      return std::string("cancelled");
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  });
  if (!eventually(ready)) {
    stop.request_stop();
    result.wait();
    return "never reached the blocking point";
  }
  stop.request_stop();
  if (result.wait_for(kPromptly) != std::future_status::ready) {
    result.wait();  // (a test failure: it would have hung for a TCP timeout)
    return "did not return promptly";
  }
  return result.get();
}

std::unique_ptr<Exporter> exporter_at(const std::string& conninfo,
                                      const std::filesystem::path& dir) {
  std::string text =
      "[importer]\nname = \"noop\"\n[exporter]\nname = \"postgresql\"\n"
      "[exporter.config]\nconnection-string = \"" +
      conninfo + "\"\n";
  Config config = parse_config(text, dir, "conduit.toml");
  return std::move(build_plugins(builtin_registry(), config).exporter);
}

// A TCP server that accepts one connection and never answers on it (until the client goes).
struct SilentServer {
  uint16_t port = 0;
  int fd = listen_tcp(16, port);
  std::atomic<bool> accepted{false};
  std::thread acceptor{[this] {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20000) == 1) {
      int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      accepted = true;
      pollfd q{c, POLLRDHUP, 0};
      ::poll(&q, 1, 20000);  // holds the connection, answers nothing
      ::close(c);
    }
  }};
  ~SilentServer() {
    acceptor.join();
    ::close(fd);
  }
};

TEST_F(Postgresql, NowInterruptsAConnectToAServerThatNeverAnswers) {
  SilentServer server;
  auto exporter =
      exporter_at("host=127.0.0.1 port=" + std::to_string(server.port) + " dbname=x", dir_.path());
  EXPECT_EQ(stop_when(
                [&](std::stop_token stop) {
                  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, stop);
                },
                [&] { return server.accepted.load(); }),
            "cancelled");
  exporter->close();
}

TEST_F(Postgresql, NowInterruptsAConnectToAListenerThatNeverAccepts) {
  uint16_t port;
  int fd = listen_tcp(0, port);
  // Fill the accept queue: further SYNs are dropped and connect() hangs.
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    ::connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    fillers.push_back(c);
  }
  size_t before = sockets_to(port);
  auto exporter =
      exporter_at("host=127.0.0.1 port=" + std::to_string(port) + " dbname=x", dir_.path());
  EXPECT_EQ(stop_when(
                [&](std::stop_token stop) {
                  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, stop);
                },
                [&] { return sockets_to(port) > before; }),
            "cancelled");
  exporter->close();
  for (int c : fillers) ::close(c);
  ::close(fd);
}

TEST_F(Postgresql, NowInterruptsAStatementTheServerNeverAnswersWithoutWaitingOnCancelOrRollback) {
  Proxy proxy(cluster_->socket_dir() + "/.s.PGSQL.5432");
  auto exporter = exporter_at(
      "host=127.0.0.1 port=" + std::to_string(proxy.port()) + " user=postgres dbname=" + db_name_,
      dir_.path());
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->receive(generated_block(0, 3), {});
  proxy.freeze();  // the server now answers nothing, cancel requests included
  BlockData block = generated_block(1, 20);
  EXPECT_EQ(stop_when([&](std::stop_token stop) { exporter->receive(block, stop); },
                      [&] { return proxy.bytes_while_frozen() > 0; }),
            "cancelled");
  exporter->close();
  Db db(conninfo());
  EXPECT_EQ(next_account_round(db), "1");
}

TEST_F(Postgresql, NowInterruptsAReconnectInsideReceive) {
  Proxy proxy(cluster_->socket_dir() + "/.s.PGSQL.5432");
  auto exporter = exporter_at(
      "host=127.0.0.1 port=" + std::to_string(proxy.port()) + " user=postgres dbname=" + db_name_,
      dir_.path());
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->receive(generated_block(0, 3), {});
  proxy.drop_all();
  BlockData block = generated_block(1, 20);
  // The lost connection is found by the next round (a retryable error)...
  try {
    exporter->receive(block, {});
    FAIL() << "a lost connection went unnoticed";
  } catch (const PluginError& e) {
    EXPECT_TRUE(e.retryable()) << e.what();
  }
  // ... and the retry reconnects, to a server that now hangs.
  proxy.freeze();
  size_t accepted = proxy.accepted();
  EXPECT_EQ(stop_when([&](std::stop_token stop) { exporter->receive(block, stop); },
                      [&] { return proxy.accepted() > accepted; }),
            "cancelled");
  exporter->close();
}

TEST_F(Postgresql, NowInterruptsARoundRequestToAServerThatNeverAnswers) {
  SilentServer server;
  auto exporter =
      exporter_at("host=127.0.0.1 port=" + std::to_string(server.port) + " dbname=x", dir_.path());
  EXPECT_EQ(stop_when([&](std::stop_token stop) { exporter->requested_round(dir_.path(), stop); },
                      [&] { return server.accepted.load(); }),
            "cancelled");
  exporter->close();
}

// ---------------------------------------------------------------------------
// A unit's txn rows streamed over the second connection (parallel-copy-bytes):
// they commit just before the unit, so a stop between the two commits leaves
// them ahead of the import state, and the next unit must remove them.

// Counts the log lines holding `needle`.
struct LineCounter {
  explicit LineCounter(std::string needle) : needle(std::move(needle)) {}
  std::unique_ptr<LogSink> sink() {
    return std::make_unique<CallbackSink>([this](std::string_view line) {
      if (line.find(needle) != std::string_view::npos) ++count;
    });
  }
  std::string needle;
  std::atomic<int> count{0};
};

// Holds an exclusive lock on `table` until released.
struct LockedTable {
  LockedTable(const std::string& conninfo, const std::string& table) : db(conninfo) {
    db.exec("BEGIN");
    db.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
  }
  void release() { db.exec("ROLLBACK"); }
  Db db;
};

// Exports `block` with a stop that fires once `ready` holds; returns how it ended.
template <class Ready>
std::string receive_stopped_when(Exporter& exporter, const BlockData& block, Ready ready) {
  std::stop_source stop;
  auto result = std::async(std::launch::async, [&] {
    try {
      exporter.receive(block, stop.get_token());
      return std::string("returned");
    } catch (const Cancelled&) {
      return std::string("cancelled");
    } catch (const std::exception& e) {
      return std::string("error: ") + e.what();
    }
  });
  bool reached = eventually(ready, std::chrono::seconds(120));
  stop.request_stop();
  std::string outcome = result.get();
  return reached ? outcome : "never reached the window (" + outcome + ")";
}

TEST_F(Postgresql, AStopBetweenTheTwoCommitsLeavesTransactionsTheNextUnitRemoves) {
  LineCounter removed("written ahead of the import state");
  Logger logger(removed.sink(), LogLevel::debug);
  auto exporter = make_exporter("parallel-copy-bytes = 1\n");
  exporter->init(InitContext{.next_round = 0, .logger = &logger}, {});
  exporter->receive(generated_block(0, 3), {});
  Db db(conninfo());

  // The unit's own statements wait on block_header; its streamed txn rows commit.
  BlockData round1 = generated_block(1, 50);
  {
    LockedTable header(conninfo(), "block_header");
    EXPECT_EQ(receive_stopped_when(
                  *exporter, round1,
                  [&] { return db.scalar("SELECT count(*) FROM txn WHERE round = 1") == "50"; }),
              "cancelled");
    header.release();
  }
  EXPECT_EQ(next_account_round(db), "1");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header WHERE round = 1"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn_participation WHERE round = 1"), "0");
  // Indexer's API joins txn with block_header: nothing of round 1 shows.
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn t JOIN block_header h ON t.round = h.round WHERE "
                      "t.round = 1"),
            "0");

  // The same exporter carries on: the rows ahead go, the round is written whole.
  exporter->receive(round1, {});
  EXPECT_EQ(removed.count.load(), 1);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 1"), "50");
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn_participation WHERE round = 1"), "0");
  EXPECT_EQ(next_account_round(db), "2");

  // Again for round 2, then a new exporter (a restart) resumes; rows ahead in
  // txn_participation too (as Indexer's writer can leave them) also go.
  BlockData round2 = generated_block(2, 50);
  {
    LockedTable header(conninfo(), "block_header");
    EXPECT_EQ(receive_stopped_when(
                  *exporter, round2,
                  [&] { return db.scalar("SELECT count(*) FROM txn WHERE round = 2") == "50"; }),
              "cancelled");
    header.release();
  }
  exporter->close();
  db.exec("INSERT INTO txn_participation VALUES ('\\x" + std::string(64, 'e') + "', 2, 999)");
  auto restarted = make_exporter("parallel-copy-bytes = 1\n");
  restarted->init(InitContext{.next_round = 2, .logger = &logger}, {});
  restarted->receive(round2, {});
  restarted->close();
  EXPECT_EQ(removed.count.load(), 2);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 2"), "50");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn_participation WHERE round = 2 AND intra = 999"),
            "0");
  EXPECT_NE(db.scalar("SELECT count(*) FROM txn_participation WHERE round = 2"), "0");
  EXPECT_EQ(next_account_round(db), "3");
}

TEST_F(Postgresql, NowWhileTheSecondConnectionWaitsLeavesNothingAndTheRoundIsWrittenAfter) {
  auto exporter = make_exporter("parallel-copy-bytes = 1\n");
  exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
  exporter->receive(generated_block(0, 3), {});
  Db db(conninfo());
  BlockData block = generated_block(1, 200);
  {
    // The streamed COPY into txn waits on the lock inside the server.
    LockedTable txn(conninfo(), "txn");
    EXPECT_EQ(receive_stopped_when(*exporter, block,
                                   [&] {
                                     return db.scalar(
                                                "SELECT count(*) FROM pg_stat_activity WHERE "
                                                "wait_event_type = 'Lock' AND query LIKE 'COPY "
                                                "txn %'") == "1";
                                   }),
              "cancelled");
    txn.release();
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn"), "0");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn_participation"), "0");
  EXPECT_EQ(next_account_round(db), "1");
  exporter->receive(block, {});
  exporter->close();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM txn WHERE round = 1"), "200");
  EXPECT_EQ(next_account_round(db), "2");
}

}  // namespace

// The database down when conduit starts (a restart during a deploy): conduit
// stays up, says what it waits for, connects once the server is back and
// exports every round; a stop then ends it with exit 0.
TEST_F(Postgresql, DaemonWaitsForTheDatabaseAtStart) {
  TempDir data_dir;
  write_text(data_dir / "conduit.toml", conduit_toml(conninfo(), 5));
  cluster_->stop();
  struct Restart {  // the other tests need the server, whatever this one's outcome
    bool needed = true;
    ~Restart() {
      try {
        if (needed) cluster_->start();
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
  } restart;
  Subprocess conduit({conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
  ASSERT_TRUE(conduit.wait_for_line("waiting for exporter:postgresql: postgresql: cannot connect"))
      << conduit.output();
  cluster_->start();
  restart.needed = false;
  ASSERT_TRUE(conduit.wait_for_line(committed_line(5))) << conduit.output();
  conduit.signal(SIGTERM);
  ASSERT_EQ(conduit.wait(), 0) << conduit.output();
  Db db(conninfo());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM block_header WHERE round <= 5"), "6");
  expect_no_gaps(db);
}

// A finite retry-count gives up at start after that many retries: the exit
// status of an unexpected stop (1), exporter-error, naming the attempts.
TEST_F(Postgresql, DaemonGivesUpOnTheDatabaseAfterRetryCount) {
  TempDir data_dir;
  std::string nobody = "host=" + cluster_->socket_dir() + " port=1 user=postgres dbname=x";
  std::string toml = conduit_toml(nobody, 5);
  toml.replace(toml.find("retry-count = 0"), 15, "retry-count = 3");
  write_text(data_dir / "conduit.toml", toml);
  auto [status, out] =
      run_command({conduit_bin(), "-d", data_dir.path().string(), "--bus", "none"});
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("retry 3 of 3"), std::string::npos) << out;
  EXPECT_NE(out.find("gave up after 4 attempts"), std::string::npos) << out;
  EXPECT_NE(out.find("exporter-error"), std::string::npos) << out;
}

// A statement cancelled by statement_timeout at start (the database busy: here
// another session holds the lock that serialises initialisations) is a
// retryable error, as a connection failure is.
TEST_F(Postgresql, StatementTimeoutAtStartIsRetryable) {
  Db(conninfo()).exec("ALTER DATABASE " + db_name_ + " SET statement_timeout = '50ms'");
  Db holder(conninfo());
  holder.exec("SELECT pg_advisory_lock(7170770617)");
  auto exporter = make_exporter();
  try {
    exporter->init(InitContext{.next_round = 0, .logger = &quiet_}, {});
    ADD_FAILURE() << "init succeeded although the lock is held";
  } catch (const PluginError& e) {
    EXPECT_TRUE(e.retryable()) << e.what();
    EXPECT_NE(std::string(e.what()).find("57014"), std::string::npos) << e.what();
  }
  exporter->close();
}
