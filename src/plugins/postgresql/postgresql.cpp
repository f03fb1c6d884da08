// The `postgresql` exporter: Go Conduit's postgresql exporter. It writes the
// database the Algorand Indexer API serves from (Indexer's schema, rows and
// JSON encodings: postgresql_indexer.cpp), from blocks and their state deltas.
//
// Exactly once: a committed unit (one round, or several written by
// write_rounds) is one database transaction covering every table and the
// metastate `state` row ({"next_account_round": N}), so a round is either
// wholly in the database or not at all, whatever stops, crashes or restarts.
// One exception, as Indexer's own writer does (idb/postgres AddBlock): a large
// unit's txn rows stream over a second connection while its rounds are staged
// (the server parses them while conduit builds the next rounds) and commit
// just before the main transaction. They can be ahead of the import state
// (after a crash or stop between the two commits), never behind: the Indexer
// API joins them with block_header and so never shows them, and the next unit
// removes them before writing (remove_rows_ahead).
//
// Stop `now`: the connection is non-blocking everywhere (connect included), and
// every wait polls the socket together with an eventfd that the stop token's
// callback makes readable. On a stop the connection is abandoned: closed at
// once, with a best-effort cancel request sent from a detached thread (PQcancel
// blocks on an unresponsive server). The server rolls back a transaction whose
// client went away, so nothing partial is ever committed.
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/block_msgpack.hpp"
#include "plugins/postgresql/postgresql.hpp"

namespace conduit::plugins {
namespace {

constexpr const char* kSample =
    R"(# libpq connection string, e.g. "host=/run/postgresql dbname=conduit" or a postgres:// URI
connection-string = ""
# prune txn and txn_participation every `interval` rounds (0: never, -1: once at
# start-up), keeping the last `rounds` rounds (0: never prune)
delete-task = { interval = 0, rounds = 100000 }
# once a group of rounds' txn rows reach this many bytes, they stream over a
# second connection, in parallel with the rest (as Indexer does); 0: one connection
parallel-copy-bytes = 1048576
)";

constexpr const char* kTxnCopyTarget = "txn (round, intra, typeenum, asset, txid, txn, extra)";
constexpr const char* kParticipationCopyTarget = "txn_participation (addr, round, intra)";

// BlockData::encoded's tag for rows built by prepare().
constexpr const char* kPreparedRows = "postgresql-rows";

// Serialises concurrent initialisations of one database (any constant will do).
constexpr const char* kInitLock = "SELECT pg_advisory_xact_lock(7170770617)";

// A database error; `connection_lost` when the connection is unusable
// afterwards; `transient` when trying again later may succeed.
class DbError : public std::runtime_error {
 public:
  DbError(const std::string& message, bool connection_lost, bool transient = false)
      : std::runtime_error(message),
        connection_lost(connection_lost),
        transient(transient || connection_lost) {}
  bool connection_lost;
  bool transient;
};

// SQLSTATE classes of errors that pass (PostgreSQL's errcodes, appendix A):
// 08 connection exception, 40 transaction rollback (serialization, deadlock),
// 53 insufficient resources, 57 operator intervention (57014 query_canceled,
// which statement_timeout raises; 57P01-57P03 the server shutting down or
// starting up).
bool transient_sqlstate(const PGresult* result) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (!state) return false;
  std::string_view cls = std::string_view(state).substr(0, 2);
  return cls == "08" || cls == "40" || cls == "53" || cls == "57";
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

std::string trimmed(const char* text) {
  std::string s = text ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

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

std::string statement_name(std::string_view sql) {
  while (!sql.empty() && (sql.front() == '\n' || sql.front() == ' ')) sql.remove_prefix(1);
  return std::string(sql.substr(0, std::min(sql.find(' ', 12), size_t{40})));
}

// One connection whose every wait can be interrupted by a stop token.
class Session {
 public:
  Session() {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw PluginError("postgresql: eventfd failed", false);
  }
  ~Session() {
    close();
    ::close(wake_fd_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool connected() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
  PGconn* get() const { return conn_; }

  // Connects without blocking: PQconnectStart/PQconnectPoll, each wait
  // interruptible. Throws Cancelled on a stop, PluginError (retryable) on failure.
  void connect(const std::string& conninfo, std::stop_token stop) {
    close();
    Watch watch(*this, stop);
    conn_ = PQconnectStart(conninfo.c_str());
    if (!conn_) throw PluginError("postgresql: out of memory connecting", true);
    if (PQstatus(conn_) == CONNECTION_BAD) fail_connect();
    PostgresPollingStatusType state = PGRES_POLLING_WRITING;
    for (;;) {
      if (state == PGRES_POLLING_OK) break;
      if (state == PGRES_POLLING_FAILED) fail_connect();
      wait(state == PGRES_POLLING_READING ? POLLIN : POLLOUT, stop, false);
      state = PQconnectPoll(conn_);
    }
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);
    PQsetnonblocking(conn_, 1);
  }

  // Runs `sql` (one or more statements, or one with parameters) and returns the
  // first error or the last result.
  Result exec(const std::string& sql, std::stop_token stop,
              ExecStatusType expected = PGRES_COMMAND_OK,
              const std::vector<std::string>& params = {}) {
    Watch watch(*this, stop);
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    int sent = params.empty()
                   ? PQsendQuery(conn_, sql.c_str())
                   : PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                       values.data(), nullptr, nullptr, 0);
    if (!sent) throw lost(statement_name(sql));
    return check(collect(stop), expected, statement_name(sql));
  }

  // COPY `target` FROM STDIN with `data` in text format.
  void copy(const std::string& target, std::string_view data, std::stop_token stop) {
    if (data.empty()) return;
    copy_start(target, stop);
    copy_put(data, stop);
    copy_end(stop);
  }

  // A COPY in parts: started, fed as rows come, ended.
  void copy_start(const std::string& target, std::stop_token stop) {
    Watch watch(*this, stop);
    copy_sql_ = "COPY " + target + " FROM STDIN";
    if (!PQsendQuery(conn_, copy_sql_.c_str())) throw lost(copy_sql_);
    check(collect(stop, true), PGRES_COPY_IN, copy_sql_);
  }
  void copy_put(std::string_view data, std::stop_token stop) {
    Watch watch(*this, stop);
    constexpr size_t kChunk = 256 * 1024;
    for (size_t at = 0; at < data.size(); at += kChunk) {
      size_t n = std::min(kChunk, data.size() - at);
      int queued;
      while ((queued = PQputCopyData(conn_, data.data() + at, static_cast<int>(n))) == 0)
        wait(POLLOUT, stop, true);
      if (queued < 0) throw lost(copy_sql_);
      flush(stop);
    }
  }
  void copy_end(std::stop_token stop) {
    Watch watch(*this, stop);
    int ended;
    while ((ended = PQputCopyEnd(conn_, nullptr)) == 0) wait(POLLOUT, stop, true);
    if (ended < 0) throw lost(copy_sql_);
    check(collect(stop), PGRES_COMMAND_OK, copy_sql_);
  }

  // Drops the connection without waiting on the server: a cancel request goes
  // out from a detached thread (best effort: it makes a backend blocked on a
  // lock give up sooner), and the socket is closed. A transaction in progress
  // is rolled back by the server.
  void abandon() {
    if (!conn_) return;
    if (PQtransactionStatus(conn_) == PQTRANS_ACTIVE) {
      if (PGcancel* cancel = PQgetCancel(conn_)) {
        std::thread([cancel] {
          char error[256];
          PQcancel(cancel, error, sizeof error);
          PQfreeCancel(cancel);
        }).detach();
      }
    }
    close();
  }

  void close() {
    if (!conn_) return;
    // Non-blocking: PQfinish's goodbye message never waits on a full socket.
    PQsetnonblocking(conn_, 1);
    PQfinish(conn_);
    conn_ = nullptr;
  }

 private:
  // The stop token's callback makes the eventfd readable for the duration of a call.
  class Watch {
   public:
    Watch(Session& session, std::stop_token stop)
        : callback_(stop, [fd = session.wake_fd_] {
            uint64_t one = 1;
            [[maybe_unused]] auto written = ::write(fd, &one, sizeof one);
          }) {
      uint64_t drained;
      while (::read(session.wake_fd_, &drained, sizeof drained) > 0) {
      }
    }

   private:
    std::stop_callback<std::function<void()>> callback_;
  };

  [[noreturn]] void fail_connect() {
    std::string message = "postgresql: cannot connect: " + trimmed(PQerrorMessage(conn_));
    close();
    throw PluginError(message, true);
  }

  DbError lost(const std::string& what) {
    DbError error(error_text(conn_, nullptr, what), true);
    close();
    return error;
  }

  // Waits until the socket is ready for `events` or the stop token fires; on a
  // stop the connection is abandoned and Cancelled thrown.
  void wait(short events, const std::stop_token& stop, bool consume) {
    for (;;) {
      if (stop.stop_requested()) {
        abandon();
        throw Cancelled();
      }
      int socket = PQsocket(conn_);
      if (socket < 0) throw lost("connection");
      pollfd fds[2] = {{socket, events, 0}, {wake_fd_, POLLIN, 0}};
      int ready = ::poll(fds, 2, -1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) throw lost("poll");
      if (fds[1].revents) continue;  // the stop callback: checked at the top
      if (consume && (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(conn_))
        throw lost("connection");
      return;
    }
  }

  void flush(const std::stop_token& stop) {
    for (;;) {
      int pending = PQflush(conn_);
      if (pending == 0) return;
      if (pending < 0) throw lost("send");
      wait(POLLIN | POLLOUT, stop, true);
    }
  }

  // Sends what is buffered and gathers the results of the query: the first
  // error, a COPY IN start, or the last result.
  Result collect(const std::stop_token& stop, bool until_copy = false) {
    flush(stop);
    Result kept;
    for (;;) {
      while (PQisBusy(conn_)) wait(POLLIN, stop, true);
      Result next(PQgetResult(conn_));
      if (!next) return kept;
      if (PQresultStatus(next.get()) == PGRES_COPY_IN) {
        if (until_copy) return next;
        // A COPY we did not expect: end it so the connection stays in step.
        PQputCopyEnd(conn_, "unexpected COPY");
        continue;
      }
      bool kept_error = kept && (PQresultStatus(kept.get()) == PGRES_FATAL_ERROR ||
                                 PQresultStatus(kept.get()) == PGRES_BAD_RESPONSE);
      if (!kept_error) kept = std::move(next);
    }
  }

  Result check(Result result, ExecStatusType expected, const std::string& what) {
    if (result && PQresultStatus(result.get()) == expected) return result;
    bool dead = PQstatus(conn_) != CONNECTION_OK;
    DbError error(error_text(conn_, result.get(), what), dead, transient_sqlstate(result.get()));
    if (dead) close();
    throw error;
  }

  PGconn* conn_ = nullptr;
  int wake_fd_ = -1;
  std::string copy_sql_;  // the COPY in progress (for its errors)
};

std::optional<uint64_t> scalar_uint(const Result& r) {
  if (!r || PQntuples(r.get()) == 0 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
  return std::stoull(PQgetvalue(r.get(), 0, 0));
}

class PostgresqlExporter final : public Exporter {
 public:
  void configure(PluginConfig& config) override {
    config.accepted_without_effect(
        "test", "Go's mock database for unit tests; conduit always uses the real one");
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
    // Once a unit's txn COPY text reaches this many bytes, its txn rows stream
    // over a second connection (see the top of the file); a smaller unit (a
    // round at the tip) keeps one connection and one commit. 0: never.
    parallel_copy_bytes_ = config.get_uint("parallel-copy-bytes", parallel_copy_bytes_);
    // Go Conduit's connection pool size. conduit writes rounds in order over at
    // most two connections, so it is accepted (Go configurations carry it) and not used.
    if (config.contains("max-conn") && config.get_uint("max-conn", 20) == 0)
      config.fail("max-conn", "must be at least 1");
    if (auto task = config.get_table("delete-task")) {
      delete_interval_ = task->get_int("interval", 0);
      if (delete_interval_ < -1) task->fail("interval", "must be -1, 0 or a number of rounds");
      delete_rounds_ = task->get_uint("rounds", 100000);
      task->finish();
      config_has_delete_ = true;
    }
  }

  // The database's next round (Go Conduit's RoundRequest), over a short
  // connection of its own; 0 when it holds no Indexer state yet.
  uint64_t round_request(const std::filesystem::path&) override {
    return request_round(std::stop_token{});
  }
  uint64_t requested_round(const std::filesystem::path&, std::stop_token stop) override {
    return request_round(stop);
  }

  void init(const InitContext& ctx, std::stop_token stop) override {
    logger_ = ctx.logger;
    if (stop.stop_requested()) throw Cancelled();
    session_.connect(conninfo_, stop);
    try {
      initialise(ctx.genesis, stop);
      db_next_ = next_account_round(stop, false);
    } catch (const DbError& e) {
      session_.abandon();
      throw PluginError(e.what(), e.transient);
    } catch (...) {
      session_.abandon();
      throw;
    }
    if (db_next_ && ctx.next_round > *db_next_)
      throw PluginError("postgresql: the database holds rounds up to " +
                            std::to_string(*db_next_ - 1) + "; starting at round " +
                            std::to_string(ctx.next_round) + " would leave a gap",
                        false);
    prune_base_ = db_next_.value_or(ctx.next_round);
    if (delete_interval_ == -1 && delete_rounds_ > 0 && db_next_) {
      try {
        session_.exec("BEGIN", stop);
        prune(*db_next_, stop);
        session_.exec("COMMIT", stop);
      } catch (const DbError& e) {
        session_.abandon();
        throw PluginError(e.what(), true);
      }
    }
    if (delete_interval_ == 0 && delete_rounds_ > 0 && logger_ && config_has_delete_)
      logger_->warn("postgresql: delete-task interval is 0: no pruning");
  }

  void receive(const BlockData& block, std::stop_token stop) override {
    stage(block, stop);
    commit_unit(stop);
  }

  // Group commit: a unit of consecutive rounds is staged round by round inside
  // one database transaction and committed at once, the metastate's next round
  // with it. (The signatures of the pipeline's unit API: supports_units, stage,
  // commit_unit, abort_unit.) Rounds the database already holds are skipped.
  bool supports_units() const override { return true; }

  void stage(const BlockData& block, std::stop_token stop) override {
    const uint64_t round = block.round();
    if (!unit_ && db_next_ && round < *db_next_) {
      debug("skipping round " + std::to_string(round) + ": already committed", round);
      return;
    }
    if (stop.stop_requested()) throw Cancelled();
    guarded(stop, [&] {
      if (!unit_) open_unit(stop);
      if (round < unit_->next) {
        debug("skipping round " + std::to_string(round) + ": already committed", round);
        return;
      }
      if (round != unit_->next)
        throw PluginError("postgresql: round " + std::to_string(round) +
                              " arrived but the database's next round is " +
                              std::to_string(unit_->next) + " (a gap)",
                          false);
      stage_round(block, stop);
      unit_->next = round + 1;
      unit_->staged = true;
    });
  }

  void commit_unit(std::stop_token stop) override {
    if (!unit_) return;
    guarded(stop, [&] {
      if (!unit_->staged) {
        session_.exec("ROLLBACK", stop);
        unit_.reset();
        return;
      }
      const uint64_t new_next = unit_->next;
      write_unit(stop);
      bool pruned = false;
      if (delete_interval_ > 0 && delete_rounds_ > 0 && new_next > delete_rounds_ &&
          new_next - prune_base_ >= static_cast<uint64_t>(delete_interval_)) {
        prune(new_next, stop);
        pruned = true;
      }
      // The next round and COMMIT in one round trip.
      Result done =
          session_.exec("INSERT INTO metastate (k, v) VALUES ('state', '{\"next_account_round\":" +
                            std::to_string(new_next) +
                            "}') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v;\nCOMMIT",
                        stop);
      // COMMIT of a failed transaction "succeeds" as ROLLBACK.
      if (std::string_view(PQcmdStatus(done.get())) != "COMMIT")
        throw DbError("postgresql: round " + std::to_string(new_next - 1) + " was rolled back",
                      false);
      rows_may_be_ahead_ = false;
      if (pruned) prune_base_ = new_next;
      // One line per round, also inside a group-committed unit (tests and
      // operators follow rounds, not units).
      const uint64_t first = db_next_ && *db_next_ < new_next ? *db_next_ : new_next - 1;
      db_next_ = new_next;
      for (uint64_t round = first; round < new_next; ++round)
        debug("committed round " + std::to_string(round) + " (" +
                  std::to_string(unit_->rows.row_count()) + " rows in a unit of " +
                  std::to_string(new_next - first) + " rounds)",
              round);
      unit_.reset();
    });
  }

  // Drops whatever the unit wrote: the connection goes, and with it the open
  // transaction (never a ROLLBACK waited on).
  void abort_unit() noexcept override {
    session_.abandon();
    side_.abandon();
    unit_.reset();
  }

  // Commits `blocks` (consecutive rounds) in one database transaction.
  void write_rounds(std::span<const BlockData* const> blocks, std::stop_token stop) {
    for (const BlockData* block : blocks) stage(*block, stop);
    commit_unit(stop);
  }

  // Overlap: a round's rows (JSON encodings, transaction ids, COPY text) built
  // on a prepare helper while the exporter commits earlier rounds.
  bool prepares() const override { return true; }
  void prepare(BlockData& block) const override {
    if (block.encoded(kPreparedRows)) return;
    const BlockData& unchanged = block;  // tree() of a mutable block drops encodings
    block.set_encoded(kPreparedRows, pg::serialize_round_rows(
                                         pg::round_rows(unchanged.tree().root, block.round())));
    // The rows are what staging needs; until the commit the round waits in the
    // queue and the unit, where its tree (several times its msgpack) would be
    // most of the exporter's memory.
    block.compact();
  }

  void close() override {
    session_.close();
    side_.close();
  }

 private:
  void debug(const std::string& message, uint64_t round) {
    if (logger_) logger_->debug("postgresql: " + message, {.round = round});
  }

  // Runs a step of a unit; on any failure the unit is dropped (the connection
  // abandoned, so the server rolls it back) and the error mapped for the pipeline.
  template <class Step>
  void guarded(const std::stop_token& stop, Step step) {
    try {
      step();
    } catch (const Cancelled&) {
      abort_unit();
      throw;
    } catch (const DbError& e) {
      abort_unit();
      if (stop.stop_requested()) throw Cancelled();
      throw PluginError(e.what(), true);
    } catch (const PluginError&) {
      abort_unit();
      throw;
    } catch (const std::exception& e) {
      abort_unit();
      if (stop.stop_requested()) throw Cancelled();
      throw PluginError(std::string("postgresql: ") + e.what(), false);
    }
  }

  // BEGIN, and the database's next round, locked until the unit ends.
  void open_unit(std::stop_token stop) {
    if (!session_.connected()) session_.connect(conninfo_, stop);
    unit_.emplace();
    // BEGIN and the locked read in one round trip.
    std::optional<uint64_t> next = scalar_uint(session_.exec(
        "BEGIN;\nSELECT (v->>'next_account_round')::bigint FROM metastate WHERE k = 'state' FOR "
        "UPDATE",
        stop, PGRES_TUPLES_OK));
    if (!next) throw PluginError("postgresql: the database lost its Indexer import state", false);
    if (rows_may_be_ahead_) {
      if (remove_rows_ahead(*next, stop))
        next = scalar_uint(session_.exec(
            "BEGIN;\nSELECT (v->>'next_account_round')::bigint FROM metastate WHERE k = 'state' "
            "FOR UPDATE",
            stop, PGRES_TUPLES_OK));
      rows_may_be_ahead_ = false;  // (the lock keeps other writers out)
      if (!next) throw PluginError("postgresql: the database lost its Indexer import state", false);
    }
    db_next_ = next;
    unit_->next = *next;
  }

  // txn rows of rounds from `next` on, which a unit that failed after its side
  // connection committed left behind, are deleted and committed on their own,
  // inside the locked transaction open_unit began (a delete left uncommitted
  // there would make the side connection's inserts of the same keys wait on
  // it: a deadlock no server sees). Returns whether it committed (then
  // open_unit begins again). Only the first unit of a run also removes
  // txn_participation rows ahead: Indexer's writer (or an older conduit) may
  // have left those too; this one never does, and without an index on round
  // that delete is a scan of the table.
  bool remove_rows_ahead(uint64_t next, std::stop_token stop) {
    const std::string from = std::to_string(next);
    const bool first_unit = !checked_at_start_;
    checked_at_start_ = true;
    Result ahead = session_.exec("SELECT EXISTS (SELECT 1 FROM txn WHERE round >= $1::bigint)",
                                 stop, PGRES_TUPLES_OK, {from});
    if (std::string_view(PQgetvalue(ahead.get(), 0, 0)) != "t") return false;
    std::string sql = "DELETE FROM txn WHERE round >= " + from + ";\n";
    if (first_unit) sql += "DELETE FROM txn_participation WHERE round >= " + from + ";\n";
    Result done = session_.exec(sql + "COMMIT", stop);
    if (std::string_view(PQcmdStatus(done.get())) != "COMMIT")
      throw DbError("postgresql: removing transactions ahead of round " + from + " was rolled back",
                    false);
    if (logger_)
      logger_->warn("postgresql: removed the transactions of rounds from " + from +
                        " on, written ahead of the import state by an interrupted unit",
                    {.round = next});
    return true;
  }

  uint64_t request_round(std::stop_token stop) {
    Session session;
    session.connect(conninfo_, stop);
    try {
      Result exists =
          session.exec("SELECT to_regclass('metastate') IS NOT NULL", stop, PGRES_TUPLES_OK);
      if (std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t") return 0;
      Result r =
          session.exec("SELECT (v->>'next_account_round')::bigint FROM metastate WHERE k = 'state'",
                       stop, PGRES_TUPLES_OK);
      return scalar_uint(r).value_or(0);
    } catch (const DbError& e) {
      throw PluginError(e.what(), true);
    }
  }

  std::optional<uint64_t> next_account_round(std::stop_token stop, bool lock) {
    return scalar_uint(session_.exec(
        std::string("SELECT (v->>'next_account_round')::bigint FROM metastate WHERE k = 'state'") +
            (lock ? " FOR UPDATE" : ""),
        stop, PGRES_TUPLES_OK));
  }

  // Creates Indexer's schema in an empty database, accepts one Indexer (or Go
  // Conduit) created at the current schema version, refuses anything else, and
  // loads the genesis allocations (Indexer's LoadGenesis) the first time.
  void initialise(const Genesis* genesis, std::stop_token stop) {
    session_.exec("BEGIN", stop);
    session_.exec(kInitLock, stop, PGRES_TUPLES_OK);
    Result exists =
        session_.exec("SELECT to_regclass('metastate') IS NOT NULL", stop, PGRES_TUPLES_OK);
    bool fresh = std::string_view(PQgetvalue(exists.get(), 0, 0)) != "t";
    if (fresh) {
      session_.exec(pg::kIndexerSchema, stop);
      session_.exec("INSERT INTO metastate (k, v) VALUES ('migration', '{\"next\":" +
                        std::to_string(pg::kIndexerMigrations) + "}')",
                    stop);
      if (logger_) logger_->info("postgresql: created the Indexer schema");
    } else {
      Result m =
          session_.exec("SELECT v->>'next', v->>'version' FROM metastate WHERE k = 'migration'",
                        stop, PGRES_TUPLES_OK);
      bool has_row = PQntuples(m.get()) > 0;
      if (has_row && PQgetisnull(m.get(), 0, 0) && !PQgetisnull(m.get(), 0, 1))
        throw PluginError(
            std::string("postgresql: the database was written by an older conduit (its own "
                        "schema, version ") +
                PQgetvalue(m.get(), 0, 1) +
                "), which the Indexer API cannot serve; conduit does not convert it. Point "
                "connection-string at a new, empty database (or drop this one): conduit "
                "creates Indexer's schema and loads it from round 0",
            false);
      if (!has_row || PQgetisnull(m.get(), 0, 0))
        throw PluginError(
            "postgresql: the database has a metastate table but no Indexer migration state; "
            "it was not created by Indexer, Go Conduit or this conduit",
            false);
      int version = std::stoi(PQgetvalue(m.get(), 0, 0));
      if (version < pg::kIndexerMigrations)
        throw PluginError("postgresql: the database is at Indexer schema migration " +
                              std::to_string(version) + " of " +
                              std::to_string(pg::kIndexerMigrations) +
                              "; run Indexer (v3) against it once to finish its migrations",
                          false);
      if (version > pg::kIndexerMigrations)
        throw PluginError("postgresql: the database is at Indexer schema migration " +
                              std::to_string(version) + ", newer than this conduit knows (" +
                              std::to_string(pg::kIndexerMigrations) + ")",
                          false);
    }

    std::string hash = genesis ? genesis->hash : "";
    Result network = session_.exec("SELECT v->>'genesis-hash' FROM metastate WHERE k = 'network'",
                                   stop, PGRES_TUPLES_OK);
    if (PQntuples(network.get()) > 0) {
      std::string stored = PQgetisnull(network.get(), 0, 0) ? "" : PQgetvalue(network.get(), 0, 0);
      if (!hash.empty() && stored != hash)
        throw PluginError("postgresql: the database holds another network (genesis hash " + stored +
                              ", the importer's is " + hash + ")",
                          false);
    } else if (!hash.empty()) {
      session_.exec(
          "INSERT INTO metastate (k, v) VALUES ('network', jsonb_build_object('genesis-hash', "
          "$1::text))",
          stop, PGRES_COMMAND_OK, {hash});
    }
    if (!next_account_round(stop, false)) {
      if (genesis && !genesis->json.empty()) {
        std::string accounts = pg::genesis_statements(genesis->json);
        if (!accounts.empty()) session_.exec(accounts, stop);
      }
      session_.exec(
          "INSERT INTO metastate (k, v) VALUES ('state', '{\"next_account_round\":0}') ON "
          "CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
          stop);
    }
    session_.exec("COMMIT", stop);
  }

  // Go Conduit's DeleteTransactions: txn and txn_participation rows before
  // `next_round - rounds`, and the `pruned` metastate row.
  void prune(uint64_t next_round, std::stop_token stop) {
    if (next_round <= delete_rounds_) return;
    std::string keep = std::to_string(next_round - delete_rounds_);
    session_.exec("DELETE FROM txn WHERE round < $1::bigint", stop, PGRES_COMMAND_OK, {keep});
    session_.exec("DELETE FROM txn_participation WHERE round < $1::bigint", stop, PGRES_COMMAND_OK,
                  {keep});
    session_.exec(
        "INSERT INTO metastate (k, v) VALUES ('pruned', jsonb_build_object('last_pruned', "
        "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "'oldest_txn_round', $1::bigint)) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
        stop, PGRES_COMMAND_OK, {keep});
    debug("pruned transactions before round " + keep, next_round - 1);
  }

  // One round's rows (prepared on a prepare helper, or built now):
  // its txn_participation (and, once the unit is large, txn) rows go to their
  // COPY at once, the rest is kept in the unit until it commits.
  void stage_round(const BlockData& block, std::stop_token stop) {
    const uint64_t round = block.round();
    pg::RoundRows rows;
    try {
      const std::string* prepared = block.encoded(kPreparedRows);
      rows = prepared ? pg::parse_round_rows(*prepared) : pg::round_rows(block.tree().root, round);
    } catch (const std::exception& e) {
      throw PluginError("postgresql: " + std::string(e.what()), false);
    }
    unit_->txns.emplace_back(round, rows.txns);
    unit_->rows.add(std::move(rows));
    // txn_participation streams over the unit's own connection, idle until the
    // unit commits.
    if (!unit_->copying_participation) {
      session_.copy_start(kParticipationCopyTarget, stop);
      unit_->copying_participation = true;
    }
    session_.copy_put(unit_->rows.take_participation_copy(), stop);
    if (unit_->streaming) {
      side_.copy_put(unit_->rows.take_txn_copy(), stop);
    } else if (parallel_copy_bytes_ > 0 && unit_->rows.txn_copy().size() >= parallel_copy_bytes_) {
      rows_may_be_ahead_ = true;  // until the main transaction commits
      if (!side_.connected()) side_.connect(conninfo_, stop);
      side_.exec("BEGIN", stop);
      side_.copy_start(kTxnCopyTarget, stop);
      unit_->streaming = true;
      side_.copy_put(unit_->rows.take_txn_copy(), stop);
    }
  }

  // The unit's rows, inside its transaction: the end of the txn_participation
  // COPY staging fed, txn by COPY (unless streamed), the other tables in one
  // simple query (a statement per table, not per round). A streamed txn COPY
  // is ended and committed on its own connection meanwhile.
  void write_unit(std::stop_token stop) {
    for (const auto& [round, txns] : unit_->txns)
      debug(
          "copying round " + std::to_string(round) + " (" + std::to_string(txns) + " transactions)",
          round);
    std::string statements = unit_->rows.statements();
    auto write_main = [&] {
      if (unit_->copying_participation) session_.copy_end(stop);
      unit_->copying_participation = false;
      session_.copy(kTxnCopyTarget, unit_->rows.txn_copy(), stop);
      if (!statements.empty()) session_.exec(statements, stop);
    };
    if (!unit_->streaming) return write_main();
    // The side's waits end on the pipeline's stop or on a failure here.
    std::stop_source side_stop;
    std::stop_callback forward(stop, [&side_stop] { side_stop.request_stop(); });
    std::exception_ptr side_error;
    {
      std::jthread side([&] {
        try {
          side_.copy_end(side_stop.get_token());
          Result done = side_.exec("COMMIT", side_stop.get_token());
          if (std::string_view(PQcmdStatus(done.get())) != "COMMIT")
            throw DbError("postgresql: the transactions' COPY was rolled back", false);
        } catch (...) {
          side_error = std::current_exception();
        }
      });
      try {
        write_main();
      } catch (...) {
        side_stop.request_stop();
        throw;  // (once the side is joined)
      }
    }
    unit_->streaming = false;
    if (side_error) std::rethrow_exception(side_error);
  }

  std::string conninfo_;
  int64_t delete_interval_ = 0;
  uint64_t delete_rounds_ = 100000;
  bool config_has_delete_ = false;
  uint64_t parallel_copy_bytes_ = 1 << 20;
  Logger* logger_ = nullptr;
  Session session_;
  Session side_;  // a large unit's txn rows (stage_round, write_unit)
  // txn may hold rows past the import state: at start (a previous run, or
  // Indexer, may have left them) and from a unit's streaming until it commits.
  bool rows_may_be_ahead_ = true;
  bool checked_at_start_ = false;
  std::optional<uint64_t> db_next_;  // metastate's next round as last seen
  uint64_t prune_base_ = 0;          // the next round at the last prune (Go's interval base)
  struct Unit {
    // User-provided: clang (14) does not see a nested class with default member
    // initializers as default-constructible for std::optional::emplace().
    Unit() {}
    uint64_t next = 0;                              // the next round the unit can take
    bool staged = false;                            // it holds at least one round
    bool streaming = false;                         // its txn rows go to side_'s COPY
    bool copying_participation = false;             // session_'s COPY is open
    pg::UnitRows rows;                              // written at commit
    std::vector<std::pair<uint64_t, size_t>> txns;  // round, transactions (for the log)
  };
  std::optional<Unit> unit_;  // the open transaction, if any
};

}  // namespace

void register_postgresql(Registry& registry) {
  registry.add_exporter(
      {"postgresql",
       "writes the Algorand Indexer's database (schema, rows, JSON) exactly once per round",
       kSample, false},
      [] { return std::make_unique<PostgresqlExporter>(); });
}

}  // namespace conduit::plugins
