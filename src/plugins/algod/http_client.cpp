#include "plugins/algod/http_client.hpp"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "core/plugin.hpp"

namespace conduit::plugins {
namespace {

// Bodies larger than this are refused: no algod response comes near it, and an
// endless stream must not exhaust memory.
constexpr std::size_t kMaxBody = std::size_t{1} << 30;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

struct WriteState {
  std::string* body;
  bool too_large = false;
};

size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<WriteState*>(user);
  size_t bytes = size * count;
  if (state->body->size() + bytes > kMaxBody) {
    state->too_large = true;
    return 0;  // makes curl fail the transfer with CURLE_WRITE_ERROR
  }
  state->body->append(data, bytes);
  return bytes;
}

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};

}  // namespace

HttpClient::HttpClient(std::string base_url,
                       std::vector<std::pair<std::string, std::string>> headers)
    : base_url_(std::move(base_url)) {
  global_init();
  while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
  curl_slist* list = nullptr;
  for (const auto& [name, value] : headers) {
    std::string line = name + ": " + value;
    curl_slist* next = curl_slist_append(list, line.c_str());
    if (!next) {
      curl_slist_free_all(list);
      throw std::bad_alloc();
    }
    list = next;
  }
  headers_ = list;
  multi_ = curl_multi_init();
  if (!multi_) {
    curl_slist_free_all(list);
    throw std::runtime_error("curl_multi_init failed");
  }
}

HttpClient::~HttpClient() {
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  curl_slist_free_all(static_cast<curl_slist*>(headers_));
}

HttpResponse HttpClient::perform(const HttpRequest& request, std::stop_token stop) {
  if (stop.stop_requested()) throw Cancelled();
  CURLM* multi = static_cast<CURLM*>(multi_);
  std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
  if (!easy) throw std::runtime_error("curl_easy_init failed");

  const std::string target = url(request.path);
  HttpResponse response;
  WriteState state{&response.body};
  char error_buffer[CURL_ERROR_SIZE] = {};
  CURL* e = easy.get();
  curl_easy_setopt(e, CURLOPT_URL, target.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(headers_));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &state);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  if (request.timeout.count() > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  if (request.stall_timeout.count() > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.stall_timeout.count()));
  }
  if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
  } else if (request.method != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  if (curl_multi_add_handle(multi, e) != CURLM_OK)
    throw std::runtime_error("curl_multi_add_handle failed");
  // Removing the handle also closes a half-done transfer's connection.
  struct Detach {
    CURLM* multi;
    CURL* easy;
    ~Detach() { curl_multi_remove_handle(multi, easy); }
  } detach{multi, e};

  // Wakes the poll below from whichever thread requests the stop.
  std::stop_callback wake(stop, [multi] { curl_multi_wakeup(multi); });
  for (;;) {
    int running = 0;
    CURLMcode code = curl_multi_perform(multi, &running);
    if (code != CURLM_OK) throw TransportError(target + ": " + curl_multi_strerror(code));
    if (running == 0) break;
    if (stop.stop_requested()) throw Cancelled();
    // The timeout only bounds how long a missed wakeup could go unnoticed;
    // curl_multi_wakeup normally ends the wait at once.
    code = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    if (code != CURLM_OK) throw TransportError(target + ": " + curl_multi_strerror(code));
    if (stop.stop_requested()) throw Cancelled();
  }

  CURLcode result = CURLE_OK;
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &queued))
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) result = msg->data.result;
  if (result != CURLE_OK) {
    if (state.too_large)
      throw TransportError(target + ": response larger than " + std::to_string(kMaxBody) +
                           " bytes");
    std::string detail = error_buffer[0] ? error_buffer : curl_easy_strerror(result);
    throw TransportError(target + ": " + detail);
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace conduit::plugins
