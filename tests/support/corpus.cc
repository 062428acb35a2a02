#include "support/corpus.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "support/cli_run.h"

namespace vhdx::testing {
namespace {

// Scratch folders made by this process; removed at exit by the process that made them (a
// forked child, e.g. a death test, leaves them alone).
struct TempDirs {
  std::mutex mutex;
  std::vector<std::string> paths;
  pid_t owner = ::getpid();
};

TempDirs& temp_dirs() {
  static TempDirs* dirs = [] {
    auto* d = new TempDirs;
    std::atexit([] {
      TempDirs& t = temp_dirs();
      if (::getpid() != t.owner) return;
      std::lock_guard lock(t.mutex);
      for (const auto& p : t.paths) {
        std::error_code ec;
        std::filesystem::remove_all(p, ec);
      }
    });
    return d;
  }();
  return *dirs;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("sha256: cannot initialise");
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void update(const void* data, std::size_t n) {
    if (EVP_DigestUpdate(ctx_, data, n) != 1) throw std::runtime_error("sha256: update failed");
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_, digest, &len) != 1) throw std::runtime_error("sha256: final");
    static const char kDigits[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
      out += kDigits[digest[i] >> 4];
      out += kDigits[digest[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace

std::string corpus_dir() {
  if (const char* env = std::getenv("VHDX_CORPUS_DIR"); env && *env) return env;
  return std::string(VHDX_SOURCE_DIR) + "/../shared/corpus";
}

std::string corpus_image(const std::string& relative) {
  const std::string source = corpus_dir() + "/" + relative;
  if (::access(source.c_str(), R_OK) != 0)
    throw std::runtime_error("corpus file not found: " + source);
  std::string name = std::filesystem::path(relative).filename().string();
  std::string tool = "cat";
  if (ends_with(name, ".gz")) {
    tool = "zcat";
    name.resize(name.size() - 3);
  } else if (ends_with(name, ".bz2")) {
    tool = "bzcat";
    name.resize(name.size() - 4);
  }
  const std::string target = make_temp_dir() + "/" + name;
  const int status = run_command(tool + " " + shell_quote(source) + " > " + shell_quote(target));
  if (status != 0)
    throw std::runtime_error("cannot decompress " + source + " (exit " + std::to_string(status) +
                             ")");
  return target;
}

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/vhdx-test-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr)
    throw std::runtime_error("cannot create a scratch folder from " + pattern);
  std::string path(buf.data());
  TempDirs& dirs = temp_dirs();
  std::lock_guard lock(dirs.mutex);
  dirs.paths.push_back(path);
  return path;
}

int run_command(const std::string& command, std::string* stdout_text) {
  std::fflush(nullptr);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) {
    if (stdout_text) stdout_text->append(buf, n);
  }
  const int status = ::pclose(pipe);
  if (status == -1) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex();
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) sha.update(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("cannot read " + path);
  return sha.hex();
}

bool have_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs(path);
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0)
      return true;
    start = end + 1;
  }
  return false;
}

std::string vhdx_cli() { return std::string(VHDX_BINARY_DIR) + "/bin/vhdx"; }

std::span<const CorpusContent> corpus_contents() {
  static constexpr CorpusContent kContents[] = {
      {"dissect-fixed/fixed.vhdx.gz",
       "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62"},
      {"dissect-dynamic/dynamic.vhdx.gz",
       "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac"},
      {"coreos-config2-base/config2_base.vhdx.bz2",
       "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d"},
      {"local-qemu72-dirtylog/qemu72-pending-bat-log.vhdx.bz2",
       "db96ec75f924125171513a349d157d70691a484532596aee03f09daf5062d385"},
  };
  return kContents;
}

}  // namespace vhdx::testing
