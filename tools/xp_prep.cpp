// xp_prep: UTF-8 text → llm.c token shards, byte-level (the default: token = byte, vocab 256) or GPT-2 BPE.
//   xp_prep [--tokenizer byte|gpt2] [--vocab PATH] [--threads N] INPUT... OUT_PREFIX
//           [val_fraction=0.1] [shard_tokens=100000000]
// Each plain INPUT is one document; INPUT.jsonl holds one document per line, its `text` field. With gpt2,
// every document is preceded by <|endoftext|> (50256) and encoded as ordinary text (tiktoken's
// encode_ordinary). Writes OUT_PREFIX_train_NNNNNN.bin and, when val_fraction > 0, OUT_PREFIX_val_NNNNNN.bin
// (the last val_fraction of the tokens); header ints 3 and 4 record the tokenizer and its vocabulary size.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "xp/core/error.hpp"
#include "xp/io/shards.hpp"
#include "xp/text/corpus.hpp"
#include "xp/text/gpt2_tokenizer.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int usage(const std::string& problem) {
  std::fprintf(stderr, "xp_prep: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: xp_prep [--tokenizer byte|gpt2] [--vocab PATH] [--threads N] INPUT... OUT_PREFIX\n"
               "               [val_fraction=0.1] [shard_tokens=100000000]\n"
               "  byte (default): token = byte, vocab 256. gpt2: GPT-2's BPE, vocab 50257, <|endoftext|> before\n"
               "  each document; PATH: a folder with vocab.json + merges.txt or encoder.json + vocab.bpe, or a\n"
               "  tiktoken ranks file. INPUT: a text file (one document) or .jsonl (a `text` field per line).\n");
  return 2;
}

struct Options {
  std::string tokenizer = "byte", vocab;
  std::vector<std::string> inputs;
  std::string prefix;
  double val_fraction = 0.1;
  size_t shard_tokens = 100'000'000;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

// "" when the arguments are usable, else what is wrong with them.
std::string parse(int argc, char** argv, Options& options) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    const bool has_value = i + 1 < argc;
    if (argument == "--tokenizer" && has_value) options.tokenizer = argv[++i];
    else if (argument == "--vocab" && has_value) options.vocab = argv[++i];
    else if (argument == "--threads" && has_value) options.threads = std::atoi(argv[++i]);
    else if (argument.rfind("val_fraction=", 0) == 0) options.val_fraction = std::atof(argument.c_str() + 13);
    else if (argument.rfind("shard_tokens=", 0) == 0) options.shard_tokens = std::strtoull(argument.c_str() + 13, nullptr, 10);
    else if (argument.rfind("--", 0) == 0) return "unknown option or missing value: " + argument;
    else positional.push_back(argument);
  }
  if (positional.size() < 2) return "give at least one INPUT and the OUT_PREFIX";
  options.prefix = positional.back();
  positional.pop_back();
  options.inputs = positional;
  if (options.tokenizer != "byte" && options.tokenizer != "gpt2")
    return "--tokenizer is byte or gpt2, not '" + options.tokenizer + "'";
  if (options.tokenizer == "gpt2" && options.vocab.empty()) return "--tokenizer gpt2 needs --vocab PATH";
  if (options.tokenizer == "byte" && !options.vocab.empty()) return "--vocab goes with --tokenizer gpt2";
  if (options.val_fraction < 0.0 || options.val_fraction >= 1.0) return "val_fraction must be in [0, 1)";
  if (options.shard_tokens == 0 || options.shard_tokens > 2'000'000'000) return "shard_tokens must be 1..2000000000";
  if (options.threads <= 0) return "--threads must be at least 1";
  return "";
}

// Tokens of the whole corpus, in document order, kept in a file beside the output until the total (and so
// the train/val split) is known; memory stays at one batch of text whatever the corpus size.
class TokenSpool {
 public:
  explicit TokenSpool(std::string path) : path_(std::move(path)), file_(std::fopen(path_.c_str(), "w+b")) {
    if (!file_) throw xp::InputError("cannot write '" + path_ + "'");
  }
  ~TokenSpool() {
    if (file_) std::fclose(file_);
    std::remove(path_.c_str());
  }
  void append(const std::vector<uint16_t>& tokens) {
    if (std::fwrite(tokens.data(), sizeof(uint16_t), tokens.size(), file_) != tokens.size())
      throw xp::InputError("cannot write '" + path_ + "' (disk full?)");
    count_ += tokens.size();
  }
  size_t count() const { return count_; }
  // Tokens [first, first + count) as shards PREFIX_SPLIT_NNNNNN.bin of shard_tokens each. Shards left by an
  // earlier run with the same prefix past the last one written are removed: the glob would read them.
  void write_shards(const Options& options, const char* split, size_t first, size_t count, int32_t tokenizer,
                    int32_t vocab_size) {
    auto shard_path = [&](size_t index) {
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, "_%s_%06zu.bin", split, index);
      return options.prefix + suffix;
    };
    std::fseek(file_, static_cast<long>(first * sizeof(uint16_t)), SEEK_SET);
    size_t index = 0;
    for (size_t done = 0; done < count; ++index) {
      std::vector<uint16_t> shard(std::min(options.shard_tokens, count - done));
      if (std::fread(shard.data(), sizeof(uint16_t), shard.size(), file_) != shard.size())
        throw xp::InputError("cannot read back '" + path_ + "'");
      xp::write_shard(shard_path(index), shard, tokenizer, vocab_size);
      std::printf("xp_prep: wrote %s (%zu tokens)\n", shard_path(index).c_str(), shard.size());
      done += shard.size();
    }
    for (; fs::exists(shard_path(index)); ++index) {
      fs::remove(shard_path(index));
      std::printf("xp_prep: removed %s (left by an earlier run)\n", shard_path(index).c_str());
    }
  }

 private:
  std::string path_;
  std::FILE* file_;
  size_t count_ = 0;
};

// One line, rewritten in place on a terminal, at most once a second.
class Progress {
 public:
  explicit Progress(uint64_t total_bytes) : total_(total_bytes), start_(Clock::now()), last_(start_) {}
  void update(uint64_t done, size_t tokens, bool final = false) {
    const auto now = Clock::now();
    if (final ? !tty_ : now - last_ < std::chrono::seconds(1)) return;  // a log gets the summary line instead
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? done / seconds : 0.0;
    const double eta = rate > 0 && total_ > done ? (total_ - done) / rate : 0.0;
    std::fprintf(stderr, "%sxp_prep: %.1f / %.1f MB, %zu tokens, %.1f MB/s, ETA %.0f s%s", tty_ ? "\r" : "",
                 done / 1e6, total_ / 1e6, tokens, rate / 1e6, eta, tty_ && !final ? "" : "\n");
    std::fflush(stderr);
  }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  uint64_t total_;
  Clock::time_point start_, last_;
  bool tty_ = isatty(STDERR_FILENO);
};

int run(const Options& options) {
  std::unique_ptr<xp::Gpt2Tokenizer> gpt2;
  int32_t tokenizer_id = xp::shard_tokenizer_byte, vocab_size = 256;
  if (options.tokenizer == "gpt2") {
    gpt2 = std::make_unique<xp::Gpt2Tokenizer>(xp::Gpt2Tokenizer::load(options.vocab));
    tokenizer_id = xp::shard_tokenizer_gpt2;
    vocab_size = gpt2->vocab_size();
    if (vocab_size > 65536) throw xp::InputError("vocabulary of " + std::to_string(vocab_size) + " tokens: shards hold uint16");
  }
  const fs::path parent = fs::path(options.prefix).parent_path();
  std::error_code error;
  if (!parent.empty()) fs::create_directories(parent, error);
  xp::CorpusReader reader(options.inputs);
  TokenSpool spool(options.prefix + ".xp_prep_tokens.tmp");
  Progress progress(reader.total_bytes());
  const std::clock_t cpu_start = std::clock();
  std::vector<std::unique_ptr<xp::Gpt2Encoder>> encoders;
  for (int t = 0; gpt2 && t < options.threads; ++t) encoders.push_back(std::make_unique<xp::Gpt2Encoder>(*gpt2));
  constexpr size_t batch_bytes = size_t{64} << 20, max_unit = size_t{1} << 20, min_unit = size_t{64} << 10;
  std::vector<xp::Segment> batch;
  size_t documents = 0;
  while (reader.read_batch(batch_bytes, batch)) {
    // About 8 units a thread, so that a file of a few MB keeps every core busy; the cuts are safe ones,
    // so the ids do not depend on them (the tests compare 1 and 3 threads, and tiktoken on whole documents).
    size_t text_bytes = 0;
    for (const xp::Segment& segment : batch) text_bytes += segment.end;
    const size_t unit_bytes =
        options.threads == 1 ? max_unit : std::clamp(text_bytes / (8 * options.threads), min_unit, max_unit);
    const std::vector<xp::WorkUnit> units = xp::split_units(batch, unit_bytes);
    std::vector<std::vector<uint16_t>> tokens(units.size());
    std::atomic<size_t> next{0};
    std::vector<std::exception_ptr> failures(options.threads);
    auto work = [&](int thread) {
      try {
        std::vector<int32_t> ids;
        for (size_t u; (u = next++) < units.size();) {
          const xp::WorkUnit& unit = units[u];
          const std::string& text = batch[unit.segment].text;
          if (!gpt2) {
            const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
            tokens[u].assign(bytes + unit.begin, bytes + unit.end);
            continue;
          }
          ids.clear();
          if (unit.begin == 0 && batch[unit.segment].starts_document) ids.push_back(gpt2->eot_token());
          encoders[thread]->encode_range(text, unit.begin, unit.end, ids);
          tokens[u].assign(ids.begin(), ids.end());
        }
      } catch (...) {
        failures[thread] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < options.threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (std::thread& thread : pool) thread.join();
    for (const std::exception_ptr& failure : failures)
      if (failure) std::rethrow_exception(failure);
    for (const std::vector<uint16_t>& unit_tokens : tokens) spool.append(unit_tokens);
    for (const xp::Segment& segment : batch) documents += segment.starts_document;
    progress.update(reader.bytes_read(), spool.count());
  }
  progress.update(reader.bytes_read(), spool.count(), true);
  const size_t total = spool.count();
  const size_t val_tokens = static_cast<size_t>(options.val_fraction * total);
  spool.write_shards(options, "train", 0, total - val_tokens, tokenizer_id, vocab_size);
  spool.write_shards(options, "val", total - val_tokens, val_tokens, tokenizer_id, vocab_size);
  // CPU seconds of all threads since the vocabulary was loaded: on a shared machine, MB per CPU second says
  // more about the encoder than the wall clock does.
  const double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::printf("xp_prep: %s tokenizer, %zu documents, %.1f MB, %zu tokens (%zu val) in %.2f s (%.1f MB/s, %d threads;"
              " %.2f CPU s, %.1f MB per CPU s)\n",
              options.tokenizer.c_str(), documents, reader.bytes_read() / 1e6, total, val_tokens, progress.seconds(),
              reader.bytes_read() / 1e6 / std::max(progress.seconds(), 1e-9), options.threads, cpu_seconds,
              reader.bytes_read() / 1e6 / std::max(cpu_seconds, 1e-9));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  const std::string problem = parse(argc, argv, options);
  if (!problem.empty()) return usage(problem);
  try {
    return run(options);
  } catch (const xp::InputError& error) {
    std::fprintf(stderr, "xp_prep: %s\n", error.what());
    return 1;
  }
}
