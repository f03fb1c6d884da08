// A small HTTP client on libcurl's multi interface, for plugins that talk to a
// REST service (algod). Every request is cancellable: a std::stop_callback wakes
// curl_multi_poll, so a stop interrupts a long-poll or a slow transfer at once
// instead of waiting for a timeout. libcurl stays inside http_client.cpp.
#pragma once

#include <chrono>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

namespace conduit::plugins {

// The request never got an HTTP response: connection refused, DNS failure,
// timeout, a transfer cut short. The message names the URL (never the headers).
class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

struct HttpRequest {
  std::string method = "GET";  // GET or POST
  std::string path;            // appended to the base URL, e.g. "/v2/status"
  // Longest the whole request may take (0 = no limit).
  std::chrono::milliseconds timeout{0};
  // Aborts a transfer that moves less than 1 byte/s for this long (0 = off);
  // catches a server that stalls in the middle of a body.
  std::chrono::seconds stall_timeout{0};
};

class HttpClient {
 public:
  // `base_url` like "http://127.0.0.1:8080"; `headers` like {"X-Algo-API-Token", token}.
  HttpClient(std::string base_url, std::vector<std::pair<std::string, std::string>> headers);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs `request`; throws conduit::Cancelled when `stop` fires first and
  // TransportError when no HTTP response arrived. Any HTTP status is returned.
  // Not reentrant: one request at a time per client.
  HttpResponse perform(const HttpRequest& request, std::stop_token stop);

  std::string url(const std::string& path) const { return base_url_ + path; }

 private:
  std::string base_url_;
  void* headers_ = nullptr;  // curl_slist*
  void* multi_ = nullptr;    // CURLM*, keeps connections alive between requests
};

}  // namespace conduit::plugins
