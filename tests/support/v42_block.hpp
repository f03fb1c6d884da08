// A consensus-v42 block built by hand from go-algorand-sdk's encoding rules
// (types/signature.go, transaction.go, block.go at v2.12.0): post-quantum
// signatures (`pqsig`: `sch` [2]byte, `slt` uint8, `pk` and `sig` []byte, all
// omitempty) on a top-level transaction, on a logic signature (`lsig.pqsig`)
// and on an inner transaction, and the header's block load (`ld`). msgpack as
// Go's codec writes it: keys sorted, zero values left out, byte arrays as bin.
#pragma once

#include <cstdint>
#include <string>

namespace conduit::test::v42 {

constexpr uint64_t kRound = 1;
constexpr uint64_t kLoad = 412345;     // header `ld`, millionths of a full block
constexpr const char* kScheme = "f1";  // Falcon-1024
constexpr uint64_t kSalt = 7;          // the top-level signatures' salt; the lsig's is 0

// Falcon-1024 sizes: a 1793-byte public key, a signature of about 1280 bytes.
std::string public_key(int which);
std::string signature(int which);
// 32-byte addresses: the PQ sender, the sender of the logic-signature
// transaction, the receiver, the application's account.
std::string address(int which);
enum Account : int { pq_sender = 1, lsig_sender = 2, receiver = 3, app_account = 4 };

// BlockData msgpack: {"block", "delta", "payset"} with three payset entries:
//   0: pay   pq_sender -> receiver, signed with pqsig (public_key(1), signature(1), kSalt)
//   1: pay   lsig_sender -> receiver, lsig {l, pqsig (public_key(2), signature(2), salt 0)}
//   2: appl  pq_sender, pqsig (public_key(1), signature(3), kSalt), with one inner
//      pay app_account -> receiver carrying pqsig (public_key(4), signature(4), kSalt)
// and a delta whose Accts hold the four accounts.
std::string block_msgpack();

}  // namespace conduit::test::v42
