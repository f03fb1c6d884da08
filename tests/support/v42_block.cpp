#include "v42_block.hpp"

#include <msgpack.hpp>

namespace conduit::test::v42 {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string pattern(size_t size, int which) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 31 + which * 97 + 1) & 0xff);
  return out;
}

void bin(Packer& p, const std::string& bytes) {
  p.pack_bin(static_cast<uint32_t>(bytes.size()));
  p.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
}

// PQSig: pk, sch, sig, slt (sorted; slt omitted when 0).
void pqsig(Packer& p, int key, int sig, uint64_t salt) {
  p.pack_map(salt ? 4 : 3);
  p.pack("pk");
  bin(p, public_key(key));
  p.pack("sch");
  bin(p, kScheme);
  p.pack("sig");
  bin(p, signature(sig));
  if (salt) {
    p.pack("slt");
    p.pack(salt);
  }
}

void pay(Packer& p, int sender, uint64_t amount, bool root) {
  p.pack_map(root ? 7 : 5);
  p.pack("amt");
  p.pack(amount);
  p.pack("fee");
  p.pack(1000);
  if (root) {
    p.pack("fv");
    p.pack(kRound);
    p.pack("lv");
    p.pack(kRound + 1000);
  }
  p.pack("rcv");
  bin(p, address(receiver));
  p.pack("snd");
  bin(p, address(sender));
  p.pack("type");
  p.pack("pay");
}

void header(Packer& p) {
  p.pack_map(8);
  p.pack("gen");
  p.pack("v42-testnet");
  p.pack("gh");
  bin(p, pattern(32, 40));
  p.pack("ld");
  p.pack(kLoad);
  p.pack("prev");
  bin(p, pattern(32, 41));
  p.pack("proto");
  p.pack("future");
  p.pack("rnd");
  p.pack(kRound);
  p.pack("tc");
  p.pack(1004);
  p.pack("ts");
  p.pack(1790000000);
}

void delta(Packer& p) {
  p.pack_map(1);
  p.pack("Accts");
  p.pack_map(1);
  p.pack("Accts");
  p.pack_array(4);
  for (int a : {pq_sender, lsig_sender, receiver, app_account}) {
    p.pack_map(2);
    p.pack("Addr");
    bin(p, address(a));
    p.pack("MicroAlgos");
    p.pack(1000000 * static_cast<uint64_t>(a));
  }
}

void payset(Packer& p) {
  p.pack_array(3);
  // 0: top-level pqsig.
  p.pack_map(3);
  p.pack("hgi");
  p.pack(true);
  p.pack("pqsig");
  pqsig(p, 1, 1, kSalt);
  p.pack("txn");
  pay(p, pq_sender, 5000, true);
  // 1: a logic signature delegated by a PQ account.
  p.pack_map(3);
  p.pack("hgi");
  p.pack(true);
  p.pack("lsig");
  p.pack_map(2);
  p.pack("l");
  bin(p, std::string("\x0a\x81\x01", 3));  // #pragma version 10; int 1
  p.pack("pqsig");
  pqsig(p, 2, 2, 0);
  p.pack("txn");
  pay(p, lsig_sender, 6000, true);
  // 2: an application call with a PQ-signed inner payment.
  p.pack_map(4);
  p.pack("dt");
  p.pack_map(1);
  p.pack("itx");
  p.pack_array(1);
  p.pack_map(2);
  p.pack("pqsig");
  pqsig(p, 4, 4, kSalt);
  p.pack("txn");
  pay(p, app_account, 7, false);
  p.pack("hgi");
  p.pack(true);
  p.pack("pqsig");
  pqsig(p, 1, 3, kSalt);
  p.pack("txn");
  p.pack_map(6);
  p.pack("apid");
  p.pack(77);
  p.pack("fee");
  p.pack(2000);
  p.pack("fv");
  p.pack(kRound);
  p.pack("lv");
  p.pack(kRound + 1000);
  p.pack("snd");
  bin(p, address(pq_sender));
  p.pack("type");
  p.pack("appl");
}

}  // namespace

std::string public_key(int which) {
  return pattern(1793, which);
}
std::string signature(int which) {
  return pattern(1280, 10 + which);
}
std::string address(int which) {
  return pattern(32, 20 + which);
}

std::string block_msgpack() {
  msgpack::sbuffer buffer;
  Packer p(buffer);
  p.pack_map(3);
  p.pack("block");
  header(p);
  p.pack("delta");
  delta(p);
  p.pack("payset");
  payset(p);
  return std::string(buffer.data(), buffer.size());
}

}  // namespace conduit::test::v42
