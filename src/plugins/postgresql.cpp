// The `postgresql` exporter: Go Conduit's postgresql exporter config, an
// Indexer-like schema (block_header, txn, metastate), one database transaction
// per round with the exporter's next round in the same commit, so that rounds
// land exactly once whatever stops, crashes or restarts happen around them.
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/block_msgpack.hpp"
#include "plugins/postgresql.hpp"

namespace conduit::plugins {
namespace {

constexpr const char* kSample =
    R"(# libpq connection string, e.g. "host=/run/postgresql dbname=conduit" or a postgres:// URI
connection-string = ""
# Go Conduit's pool size; conduit writes rounds in order over one connection
max-conn = 20
# prune every `interval` rounds (0: never, -1: once at start-up), keeping the last `rounds` rounds
delete-task = { interval = 0, rounds = 100000 }
)";

// Schema versions, applied in order at init; each runs in the migration transaction.
const std::vector<std::vector<std::string>> kMigrations = {
    {
        "CREATE TABLE IF NOT EXISTS block_header ("
        " round bigint PRIMARY KEY,"
        " realtime timestamp without time zone NOT NULL,"
        " rewardslevel bigint NOT NULL,"
        " header jsonb NOT NULL)",
        "CREATE TABLE IF NOT EXISTS txn ("
        " round bigint NOT NULL,"
        " intra integer NOT NULL,"
        " typeenum smallint NOT NULL,"
        " asset bigint NOT NULL,"
        " txid text,"
        " txn jsonb NOT NULL,"
        " extra jsonb NOT NULL,"
        " PRIMARY KEY (round, intra))",
    },
    {
        "CREATE INDEX IF NOT EXISTS txn_by_txid ON txn (txid)",
    },
};

// Serialises concurrent migrations of one database (any constant will do).
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7170770617)";

// A database error; `connection_lost` when the connection is unusable afterwards.
class DbError : public std::runtime_error {
 public:
  DbError(const std::string& message, bool connection_lost)
      : std::runtime_error(message), connection_lost(connection_lost) {}
  bool connection_lost;
};

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Conn connect_db(const std::string& conninfo) {
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (!conn) throw PluginError("postgresql: out of memory connecting", true);
  if (PQstatus(conn.get()) != CONNECTION_OK)
    throw PluginError("postgresql: cannot connect: " + trimmed(PQerrorMessage(conn.get())), true);
  PQsetNoticeProcessor(
      conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

// A stop token and the connection's cancel handle: statements run with one are
// cancelled when the token fires.
struct Interrupt {
  std::stop_token stop;
  PGcancel* cancel = nullptr;
  int wake_fd = -1;  // an eventfd the stop callback makes readable
  // When the last cancel request went out: each one is a new connection (a fork
  // of the postmaster), so they are spaced out.
  mutable std::optional<std::chrono::steady_clock::time_point> last_cancel;
};

std::string error_text(PGconn* conn, const PGresult* result, const std::string& what) {
  std::string message = "postgresql: " + what + ": ";
  if (result) {
    const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    message += trimmed(PQresultErrorMessage(result));
    if (state) message += std::string(" (SQLSTATE ") + state + ")";
  } else {
    message += trimmed(PQerrorMessage(conn));
  }
  return message;
}

// Waits until the socket is ready for `events` (reading what arrives) or the
// stop token fires. Once it has fired, the cancel request is sent from here (the
// exporter's thread, so the thread requesting the stop never waits on the
// server) and again every 50 ms until the server answers: a cancel that reaches
// the backend before it has read the statement would otherwise be lost.
// Returns false when the connection is lost.
bool wait_socket(PGconn* conn, const Interrupt& interrupt, short events) {
  bool stopping = interrupt.stop.stop_requested();
  if (stopping) {
    auto now = std::chrono::steady_clock::now();
    if (!interrupt.last_cancel || now - *interrupt.last_cancel >= std::chrono::milliseconds(50)) {
      char error[256];
      PQcancel(interrupt.cancel, error, sizeof error);
      interrupt.last_cancel = now;
    }
  }
  pollfd fds[2] = {{PQsocket(conn), events, 0}, {interrupt.wake_fd, POLLIN, 0}};
  int ready = ::poll(fds, stopping ? 1 : 2, stopping ? 50 : -1);
  if (ready < 0) return errno == EINTR;
  if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) return PQconsumeInput(conn) != 0;
  return true;
}

// Sends what libpq has buffered (the connection is non-blocking in receive()).
bool flush_output(PGconn* conn, const Interrupt& interrupt) {
  for (;;) {
    int pending = PQflush(conn);
    if (pending == 0) return true;
    if (pending < 0 || !wait_socket(conn, interrupt, POLLIN | POLLOUT)) return false;
  }
}

// Collects the result of the statement just sent, interruptibly with an
// Interrupt. Returns the first error result, a COPY IN result, or the last result.
Result await_result(PGconn* conn, const Interrupt* interrupt) {
  Result kept;
  if (interrupt && !flush_output(conn, *interrupt)) return kept;
  for (;;) {
    if (interrupt) {
      while (PQisBusy(conn))
        if (!wait_socket(conn, *interrupt, POLLIN)) return kept;  // connection lost
    }
    Result next(PQgetResult(conn));
    if (!next) return kept;
    if (PQresultStatus(next.get()) == PGRES_COPY_IN) return next;
    bool kept_error = kept && (PQresultStatus(kept.get()) == PGRES_FATAL_ERROR ||
                               PQresultStatus(kept.get()) == PGRES_BAD_RESPONSE);
    if (!kept_error) kept = std::move(next);
  }
}

Result check(PGconn* conn, Result result, ExecStatusType expected, const std::string& what) {
  if (result && PQresultStatus(result.get()) == expected) return result;
  throw DbError(error_text(conn, result.get(), what), PQstatus(conn) != CONNECTION_OK);
}

std::string statement_name(const std::string& sql) {
  return sql.substr(0, sql.find(' ', 12));
}

Result exec_params(PGconn* conn, const std::string& sql, const std::vector<std::string>& params,
                   ExecStatusType expected = PGRES_COMMAND_OK,
                   const Interrupt* interrupt = nullptr) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  if (!PQsendQueryParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                         nullptr, nullptr, 0))
    throw DbError(error_text(conn, nullptr, statement_name(sql)), PQstatus(conn) != CONNECTION_OK);
  return check(conn, await_result(conn, interrupt), expected, statement_name(sql));
}

Result exec(PGconn* conn, const std::string& sql, ExecStatusType expected = PGRES_COMMAND_OK,
            const Interrupt* interrupt = nullptr) {
  return exec_params(conn, sql, {}, expected, interrupt);
}

// The exporter's next round as stored in metastate, if any.
std::optional<uint64_t> stored_next_round(PGconn* conn, bool lock,
                                          const Interrupt* interrupt = nullptr) {
  Result r =
      exec(conn,
           std::string("SELECT (v->>'next-round')::bigint FROM metastate WHERE k = 'state'") +
               (lock ? " FOR UPDATE" : ""),
           PGRES_TUPLES_OK, interrupt);
  if (PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
  return std::stoull(PQgetvalue(r.get(), 0, 0));
}

// COPY's text format: backslash escapes for the characters it treats specially.
void append_copy_text(std::string_view text, std::string& out) {
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += c;
    }
  }
}

std::string_view str_field(const msgpack::object& map, std::string_view key) {
  const auto* v = mp::find(map, key);
  if (!v || v->type != msgpack::type::STR) return {};
  return {v->via.str.ptr, v->via.str.size};
}

uint64_t uint_field(const msgpack::object& map, std::string_view key) {
  const auto* v = mp::find(map, key);
  return v && v->type == msgpack::type::POSITIVE_INTEGER ? v->via.u64 : 0;
}

// The asset or application a transaction is about (Indexer's `asset` column);
// for creations the id comes from the apply data.
uint64_t asset_of(const msgpack::object& stxn, const msgpack::object& txn, int type) {
  switch (type) {
    case 3:
      return uint_field(txn, "caid") ? uint_field(txn, "caid") : uint_field(stxn, "caid");
    case 4:
      return uint_field(txn, "xaid");
    case 5:
      return uint_field(txn, "faid");
    case 6:
      return uint_field(txn, "apid") ? uint_field(txn, "apid") : uint_field(stxn, "apid");
    default:
      return 0;
  }
}

class Cancel {};  // internal: the stop token fired between statements

class PostgresqlExporter final : public Exporter {
 public:
  void configure(PluginConfig& config) override {
    conninfo_ = config.get_string("connection-string", "");
    if (conninfo_.empty()) config.fail("connection-string", "must name the database");
    // Validate the syntax now, so a typo is a configuration error (exit code 2).
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(conninfo_.c_str(), &error);
    if (!options) {
      std::string message = error ? trimmed(error) : "invalid";
      PQfreemem(error);
      config.fail("connection-string", "invalid connection string: " + message);
    }
    PQconninfoFree(options);
    max_conn_ = config.get_uint("max-conn", 20);
    if (max_conn_ == 0) config.fail("max-conn", "must be at least 1");
    if (auto task = config.get_table("delete-task")) {
      delete_interval_ = task->get_int("interval", 0);
      if (delete_interval_ < -1) task->fail("interval", "must be -1, 0 or a number of rounds");
      delete_rounds_ = task->get_uint("rounds", 100000);
      if (delete_rounds_ == 0) task->fail("rounds", "must be at least 1");
      task->finish();
    }
  }

  uint64_t round_request(const std::filesystem::path&) override {
    // Before init: a short connection of its own. No schema yet means no request.
    Conn conn = connect_db(conninfo_);
    try {
      Result exists =
          exec(conn.get(), "SELECT to_regclass('metastate') IS NOT NULL", PGRES_TUPLES_OK);
      if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") return 0;
      return stored_next_round(conn.get(), false).value_or(0);
    } catch (const DbError& e) {
      throw PluginError(e.what(), true);
    }
  }

  void init(const InitContext& ctx, std::stop_token stop) override {
    logger_ = ctx.logger;
    if (stop.stop_requested()) throw Cancelled();
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw PluginError("postgresql: eventfd failed", false);
    conn_ = connect_db(conninfo_);
    try {
      migrate();
      db_next_ = stored_next_round(conn_.get(), false);
    } catch (const DbError& e) {
      throw PluginError(e.what(), e.connection_lost);
    }
    if (db_next_ && ctx.next_round > *db_next_)
      throw PluginError("postgresql: the database holds rounds up to " +
                            std::to_string(*db_next_ - 1) + "; starting at round " +
                            std::to_string(ctx.next_round) + " would leave a gap",
                        false);
    if (delete_interval_ == -1 && db_next_) prune_once(*db_next_);
  }

  void receive(const BlockData& block, std::stop_token stop) override {
    const uint64_t round = block.round();
    if (db_next_ && round < *db_next_) {
      debug("skipping round " + std::to_string(round) + ": already committed", round);
      return;
    }
    if (stop.stop_requested()) throw Cancelled();
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) conn_ = connect_db(conninfo_);

    // `now` cancels the statement in flight: the stop callback only wakes the
    // wait in await_result/flush (it runs on the thread requesting the stop,
    // which must not wait on the server), and that sends the cancel request.
    // The COPY loop checks the token between chunks, so the latency is one
    // chunk's worth whatever the round's size.
    std::unique_ptr<PGcancel, decltype(&PQfreeCancel)> cancel(PQgetCancel(conn_.get()),
                                                              &PQfreeCancel);
    if (!cancel) throw PluginError("postgresql: cannot create a cancel handle", true);
    uint64_t drained;
    while (::read(wake_fd_, &drained, sizeof drained) > 0) {
    }
    std::stop_callback on_stop(stop, [fd = wake_fd_] {
      uint64_t one = 1;
      [[maybe_unused]] auto written = ::write(fd, &one, sizeof one);
    });
    Interrupt interrupt{stop, cancel.get(), wake_fd_};
    interrupt_ = &interrupt;
    // Non-blocking, so that a COPY the server has stopped reading cannot hold
    // this thread in a send that no cancel can interrupt.
    PQsetnonblocking(conn_.get(), 1);
    struct Reset {
      PostgresqlExporter& self;
      ~Reset() {
        self.interrupt_ = nullptr;
        if (self.conn_) PQsetnonblocking(self.conn_.get(), 0);
      }
    } reset{*this};
    try {
      write_round(block, stop);
    } catch (const Cancel&) {
      rollback();
      throw Cancelled();
    } catch (const DbError& e) {
      rollback();
      if (stop.stop_requested()) throw Cancelled();
      if (e.connection_lost) conn_.reset();
      throw PluginError(e.what(), true);
    } catch (const PluginError&) {
      rollback();
      throw;
    } catch (...) {
      rollback();
      if (stop.stop_requested()) throw Cancelled();
      throw;
    }
  }

  void close() override { conn_.reset(); }

  ~PostgresqlExporter() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

 private:
  void debug(const std::string& message, uint64_t round) {
    if (logger_) logger_->debug("postgresql: " + message, {.round = round});
  }

  void migrate() {
    PGconn* c = conn_.get();
    exec(c, "BEGIN");
    exec(c, kMigrationLock, PGRES_TUPLES_OK);
    exec(c, "CREATE TABLE IF NOT EXISTS metastate (k text PRIMARY KEY, v jsonb NOT NULL)");
    Result r = exec(c, "SELECT (v->>'version')::int FROM metastate WHERE k = 'migration'",
                    PGRES_TUPLES_OK);
    size_t version = PQntuples(r.get()) ? std::stoul(PQgetvalue(r.get(), 0, 0)) : 0;
    if (version > kMigrations.size()) {
      exec(c, "ROLLBACK");
      throw PluginError("postgresql: the database schema is version " + std::to_string(version) +
                            ", newer than this conduit knows (" +
                            std::to_string(kMigrations.size()) + ")",
                        false);
    }
    for (size_t v = version; v < kMigrations.size(); ++v)
      for (const auto& sql : kMigrations[v]) exec(c, sql);
    exec_params(c,
                "INSERT INTO metastate (k, v) VALUES ('migration', jsonb_build_object('version', "
                "$1::int)) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                {std::to_string(kMigrations.size())});
    exec(c, "COMMIT");
    if (version < kMigrations.size() && logger_)
      logger_->info("postgresql: schema migrated from version " + std::to_string(version) + " to " +
                    std::to_string(kMigrations.size()));
  }

  void prune(uint64_t next_round) {
    if (next_round <= delete_rounds_) return;
    std::vector<std::string> keep_from{std::to_string(next_round - delete_rounds_)};
    exec_params(conn_.get(), "DELETE FROM txn WHERE round < $1::bigint", keep_from,
                PGRES_COMMAND_OK, interrupt_);
    exec_params(conn_.get(), "DELETE FROM block_header WHERE round < $1::bigint", keep_from,
                PGRES_COMMAND_OK, interrupt_);
  }

  void prune_once(uint64_t next_round) {
    try {
      exec(conn_.get(), "BEGIN");
      prune(next_round);
      exec(conn_.get(), "COMMIT");
    } catch (const DbError& e) {
      rollback();
      throw PluginError(e.what(), true);
    }
  }

  void rollback() {
    if (!conn_) return;
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
      conn_.reset();
      return;
    }
    if (PQtransactionStatus(conn_.get()) == PQTRANS_IDLE) return;
    Result r(PQexec(conn_.get(), "ROLLBACK"));
    // A connection that cannot roll back is dropped: the server rolls back then.
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK ||
        PQtransactionStatus(conn_.get()) != PQTRANS_IDLE)
      conn_.reset();
  }

  void write_round(const BlockData& block, std::stop_token stop) {
    PGconn* c = conn_.get();
    const uint64_t round = block.round();
    auto checkpoint = [&] {
      if (stop.stop_requested()) throw Cancel{};
    };
    const msgpack::object& root = block.tree().root;
    const msgpack::object* header = mp::find(root, "block");
    if (!header || header->type != msgpack::type::MAP)
      throw PluginError("postgresql: round " + std::to_string(round) + " has no block header",
                        false);

    exec(c, "BEGIN", PGRES_COMMAND_OK, interrupt_);
    checkpoint();
    if (auto next = stored_next_round(c, true, interrupt_)) {
      db_next_ = next;
      if (*next > round) {
        exec(c, "ROLLBACK", PGRES_COMMAND_OK, interrupt_);
        debug("skipping round " + std::to_string(round) + ": already committed", round);
        return;
      }
      if (*next < round)
        throw PluginError("postgresql: round " + std::to_string(round) +
                              " arrived but the database's next round is " + std::to_string(*next) +
                              " (a gap)",
                          false);
    }
    checkpoint();
    exec_params(c,
                "INSERT INTO block_header (round, realtime, rewardslevel, header) VALUES "
                "($1::bigint, to_timestamp($2::bigint) AT TIME ZONE 'UTC', $3::bigint, $4::jsonb)",
                {std::to_string(round), std::to_string(uint_field(*header, "ts")),
                 std::to_string(uint_field(*header, "earn")), pg::to_json(*header)},
                PGRES_COMMAND_OK, interrupt_);

    const msgpack::object* payset = mp::find(root, "payset");
    size_t rows = 0;
    if (payset && payset->type == msgpack::type::ARRAY && payset->via.array.size > 0) {
      checkpoint();
      debug("copying round " + std::to_string(round) + " (" +
                std::to_string(payset->via.array.size) + " transactions)",
            round);
      exec(c, "COPY txn (round, intra, typeenum, asset, txid, txn, extra) FROM STDIN",
           PGRES_COPY_IN, interrupt_);
      rows = copy_payset(*payset, *header, round, stop);
    }
    if (delete_interval_ > 0 && round % static_cast<uint64_t>(delete_interval_) == 0) {
      checkpoint();
      prune(round + 1);
    }
    checkpoint();
    exec_params(c,
                "INSERT INTO metastate (k, v) VALUES ('state', jsonb_build_object('next-round', "
                "$1::bigint)) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                {std::to_string(round + 1)}, PGRES_COMMAND_OK, interrupt_);
    checkpoint();
    Result done = exec(c, "COMMIT", PGRES_COMMAND_OK, interrupt_);
    // COMMIT of a failed transaction "succeeds" as ROLLBACK.
    if (std::string_view(PQcmdStatus(done.get())) != "COMMIT")
      throw DbError("postgresql: round " + std::to_string(round) + " was rolled back", false);
    db_next_ = round + 1;
    debug("committed round " + std::to_string(round) + " (" + std::to_string(rows) + " rows)",
          round);
  }

  // Streams the payset (and inner transactions, depth first, as Indexer numbers
  // them) into the COPY started by the caller. Returns the number of rows.
  size_t copy_payset(const msgpack::object& payset, const msgpack::object& header, uint64_t round,
                     std::stop_token stop) {
    PGconn* c = conn_.get();
    constexpr size_t kChunk = 256 * 1024;
    std::string buffer;
    buffer.reserve(kChunk + 64 * 1024);
    std::string json;
    const std::string round_text = std::to_string(round);
    uint32_t intra = 0;

    const Interrupt& interrupt = *interrupt_;
    // PQputCopyData/End return 0 while the non-blocking connection's buffer is full.
    auto copy_end = [&](const char* error) {
      int queued;
      while ((queued = PQputCopyEnd(c, error)) == 0)
        if (!wait_socket(c, interrupt, POLLIN | POLLOUT)) return false;
      return queued == 1 && flush_output(c, interrupt);
    };
    auto flush = [&] {
      if (buffer.empty()) return;
      int queued;
      while ((queued = PQputCopyData(c, buffer.data(), static_cast<int>(buffer.size()))) == 0)
        if (!wait_socket(c, interrupt, POLLIN | POLLOUT)) break;
      if (queued != 1 || !flush_output(c, interrupt))
        throw DbError("postgresql: COPY failed: " + trimmed(PQerrorMessage(c)),
                      PQstatus(c) != CONNECTION_OK);
      buffer.clear();
    };
    auto abort_copy = [&](const char* why) {
      if (copy_end(why)) await_result(c, interrupt_);
    };
    auto add_row = [&](const msgpack::object& stxn, const std::string& txid,
                       const std::string& extra) {
      const msgpack::object* txn = mp::find(stxn, "txn");
      int type = txn ? pg::type_enum(str_field(*txn, "type")) : 0;
      uint64_t asset = txn ? asset_of(stxn, *txn, type) : 0;
      buffer += round_text;
      buffer += '\t';
      buffer += std::to_string(intra++);
      buffer += '\t';
      buffer += std::to_string(type);
      buffer += '\t';
      buffer += std::to_string(asset);
      buffer += '\t';
      buffer += txid.empty() ? "\\N" : txid;
      buffer += '\t';
      json.clear();
      pg::append_json(stxn, json);
      append_copy_text(json, buffer);
      buffer += '\t';
      append_copy_text(extra, buffer);
      buffer += '\n';
    };
    // Inner transactions carry their root's txid; `extra` says which root.
    auto add_inner = [&](auto& self, const msgpack::object& stxn, uint32_t root_intra,
                         const std::string& root_txid) -> void {
      const msgpack::object* dt = mp::find(stxn, "dt");
      const msgpack::object* itx = dt ? mp::find(*dt, "itx") : nullptr;
      if (!itx || itx->type != msgpack::type::ARRAY) return;
      for (uint32_t k = 0; k < itx->via.array.size; ++k) {
        const auto& inner = itx->via.array.ptr[k];
        add_row(inner, root_txid,
                "{\"root-intra\":" + std::to_string(root_intra) + ",\"root-txid\":\"" + root_txid +
                    "\"}");
        self(self, inner, root_intra, root_txid);
      }
    };

    try {
      for (uint32_t i = 0; i < payset.via.array.size; ++i) {
        const auto& stib = payset.via.array.ptr[i];
        uint32_t root_intra = intra;
        std::string txid = pg::transaction_id(stib, header);
        add_row(stib, txid, "{}");
        add_inner(add_inner, stib, root_intra, txid);
        if (buffer.size() >= kChunk) {
          if (stop.stop_requested()) throw Cancel{};
          flush();
        }
      }
      if (stop.stop_requested()) throw Cancel{};
      flush();
    } catch (const Cancel&) {
      abort_copy("cancelled by conduit");
      throw;
    } catch (const DbError&) {
      if (PQstatus(c) == CONNECTION_OK) abort_copy("aborted by conduit");
      throw;
    } catch (const std::exception& e) {
      abort_copy("aborted by conduit");
      throw PluginError(std::string("postgresql: round ") + round_text + ": " + e.what(), false);
    }
    if (!copy_end(nullptr))
      throw DbError("postgresql: COPY failed: " + trimmed(PQerrorMessage(c)),
                    PQstatus(c) != CONNECTION_OK);
    check(c, await_result(c, interrupt_), PGRES_COMMAND_OK, "COPY txn");
    return intra;
  }

  std::string conninfo_;
  uint64_t max_conn_ = 20;
  int64_t delete_interval_ = 0;
  uint64_t delete_rounds_ = 100000;
  Logger* logger_ = nullptr;
  Conn conn_;
  const Interrupt* interrupt_ = nullptr;  // set while receive() runs
  int wake_fd_ = -1;
  std::optional<uint64_t> db_next_;  // metastate's next round as last seen
};

}  // namespace

void register_postgresql(Registry& registry) {
  registry.add_exporter(
      {"postgresql", "writes blocks and transactions into PostgreSQL, exactly once per round",
       kSample, false},
      [] { return std::make_unique<PostgresqlExporter>(); });
}

}  // namespace conduit::plugins
