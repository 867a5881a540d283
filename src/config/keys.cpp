// The table of input-deck keys: name, table, type, help, and how each sets and shows its field.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "xp/config/deck.hpp"
#include "xp/core/error.hpp"

namespace xp {
namespace {

template <class T>
using Field = T& (*)(Config&);

std::string show_float(double value) {
  // The shortest text that reads back as the same double.
  char text[64];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  std::string out = text;
  // TOML needs a '.' or exponent to read a float back as a float.
  if (out.find_first_of(".eEn") == std::string::npos) out += ".0";
  return out;
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

[[noreturn]] void bad_value(const DeckValue& value, const std::string& key, const std::string& expected) {
  throw InputError(value.where + ": key '" + key + "' expects " + expected + ", got " + value.text);
}

// Integer key; `auto_word` (if not empty) is accepted and stored as 0.
template <class T>
DeckKey integer_key(const char* name, const char* section, const char* help, Field<T> field,
                    int64_t min, const char* auto_word = "") {
  const std::string auto_text = auto_word;
  std::string type = "integer >= " + std::to_string(min);
  if (!auto_text.empty()) type += " | " + auto_text;
  DeckKey key{name, section, type, help, nullptr, nullptr};
  key.set = [name, min, auto_text, type, field](Config& config, const DeckValue& value) {
    if (!auto_text.empty() && value.kind == DeckValue::Kind::String && value.text == auto_text) {
      field(config) = 0;
      return;
    }
    constexpr auto max = std::numeric_limits<T>::max();
    const bool too_big = max < static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                         value.integer > static_cast<int64_t>(max);
    if (value.kind != DeckValue::Kind::Integer || value.integer < min || too_big)
      bad_value(value, name, type);
    field(config) = static_cast<T>(value.integer);
  };
  key.show = [auto_text, field](const Config& config) {
    T current = field(const_cast<Config&>(config));
    if (!auto_text.empty() && current == 0) return "\"" + auto_text + "\"";
    return std::to_string(current);
  };
  return key;
}

// Float key in [min, max]; `off_word` (if not empty) is accepted and stored as 0.
DeckKey float_key(const char* name, const char* section, const char* help, Field<double> field,
                  double min, double max, const char* off_word = "") {
  const std::string off_text = off_word;
  std::string type = "float in [" + show_float(min) + ", " +
                     (std::isinf(max) ? std::string("inf") : show_float(max)) + "]";
  if (!off_text.empty()) type += " | " + off_text;
  DeckKey key{name, section, type, help, nullptr, nullptr};
  key.set = [name, min, max, off_text, type, field](Config& config, const DeckValue& value) {
    if (!off_text.empty() && value.kind == DeckValue::Kind::String && value.text == off_text) {
      field(config) = 0.0;
      return;
    }
    double number = 0.0;
    if (value.kind == DeckValue::Kind::Float) number = value.real;
    else if (value.kind == DeckValue::Kind::Integer) number = static_cast<double>(value.integer);
    else bad_value(value, name, type);
    if (!std::isfinite(number) || number < min || number > max) bad_value(value, name, type);
    field(config) = number;
  };
  key.show = [off_text, field](const Config& config) {
    double current = field(const_cast<Config&>(config));
    if (!off_text.empty() && current <= 0.0) return "\"" + off_text + "\"";
    return show_float(current);
  };
  return key;
}

DeckKey bool_key(const char* name, const char* section, const char* help, Field<bool> field) {
  DeckKey key{name, section, "true | false", help, nullptr, nullptr};
  key.set = [name, field](Config& config, const DeckValue& value) {
    if (value.kind != DeckValue::Kind::Boolean) bad_value(value, name, "true or false");
    field(config) = value.text == "true";
  };
  key.show = [field](const Config& config) {
    return std::string(field(const_cast<Config&>(config)) ? "true" : "false");
  };
  return key;
}

DeckKey string_key(const char* name, const char* section, const char* help, Field<std::string> field) {
  DeckKey key{name, section, "string", help, nullptr, nullptr};
  key.set = [name, field](Config& config, const DeckValue& value) {
    if (value.kind != DeckValue::Kind::String) bad_value(value, name, "a string");
    field(config) = value.text;
  };
  key.show = [field](const Config& config) { return quote(field(const_cast<Config&>(config))); };
  return key;
}

// A string key limited to a fixed set of words (kept as the word: code that takes tokenizer names reads it).
DeckKey word_key(const char* name, const char* section, const char* help, Field<std::string> field,
                 std::vector<std::string> words) {
  DeckKey key = string_key(name, section, help, field);
  key.type.clear();
  for (const std::string& word : words) key.type += (key.type.empty() ? "" : " | ") + word;
  key.set = [name, field, words, type = key.type](Config& config, const DeckValue& value) {
    if (value.kind == DeckValue::Kind::String && std::find(words.begin(), words.end(), value.text) != words.end()) {
      field(config) = value.text;
      return;
    }
    bad_value(value, name, type);
  };
  return key;
}

// A key whose value is one of a fixed set of words, stored as the enum value at the same index.
template <class E>
DeckKey choice_key(const char* name, const char* section, const char* help, Field<E> field,
                   std::vector<std::string> words) {
  std::string type;
  for (const std::string& word : words) type += (type.empty() ? "" : " | ") + word;
  DeckKey key{name, section, type, help, nullptr, nullptr};
  key.set = [name, field, words, type](Config& config, const DeckValue& value) {
    if (value.kind == DeckValue::Kind::String)
      for (size_t i = 0; i < words.size(); ++i)
        if (value.text == words[i]) {
          field(config) = static_cast<E>(i);
          return;
        }
    bad_value(value, name, type);
  };
  key.show = [field, words](const Config& config) {
    return quote(words.at(static_cast<size_t>(field(const_cast<Config&>(config)))));
  };
  return key;
}

// A size in bytes: "80GB", "80GiB", "512MB", a plain number of bytes, or "auto" (0: detect).
DeckKey memory_key(const char* name, const char* meaning, double ParallelConfig::*field) {
  DeckKey key{name, "parallel", "size (80GB, 512MiB) | auto", meaning, nullptr, nullptr};
  key.set = [type = key.type, name, field](Config& config, const DeckValue& value) {
    if (value.kind == DeckValue::Kind::Integer && value.integer > 0) {
      config.parallel.*field = static_cast<double>(value.integer);
      return;
    }
    if (value.kind != DeckValue::Kind::String) bad_value(value, name, type);
    if (value.text == "auto") {
      config.parallel.*field = 0.0;
      return;
    }
    char* end = nullptr;
    const double number = std::strtod(value.text.c_str(), &end);
    const std::string unit = end ? end : "";
    double scale = 0.0;
    for (const auto& [unit_name, factor] : {std::pair<const char*, double>{"B", 1.0}, {"KB", 1e3}, {"MB", 1e6},
                                            {"GB", 1e9}, {"TB", 1e12}, {"KiB", 1024.0}, {"MiB", 1048576.0},
                                            {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}})
      if (unit == unit_name) scale = factor;
    if (end == value.text.c_str() || scale == 0.0 || !(number > 0.0)) bad_value(value, name, type);
    config.parallel.*field = number * scale;
  };
  key.show = [field](const Config& config) {
    if (config.parallel.*field <= 0.0) return std::string("\"auto\"");
    return quote(show_float(config.parallel.*field / 1e9) + "GB");
  };
  return key;
}

std::vector<DeckKey> make_keys() {
  constexpr double inf = std::numeric_limits<double>::infinity();
  std::vector<DeckKey> keys;
  DeckKey model{"model", "model", "string", "preset: gpt2 (124M), gpt2-medium (350M), gpt2-large (774M), "
                "gpt2-xl (1.5B) or custom; explicit shape keys override it", nullptr, nullptr};
  model.set = [](Config& config, const DeckValue& value) {
    if (value.kind != DeckValue::Kind::String) bad_value(value, "model", "a preset name string");
    apply_model_preset(value.text, config.model, value.where);
  };
  model.show = [](const Config& config) { return quote(config.model.model); };
  keys.push_back(model);
  keys.push_back(integer_key<int>("n_layer", "model", "transformer blocks",
                                  [](Config& c) -> int& { return c.model.n_layer; }, 1));
  keys.push_back(integer_key<int>("n_head", "model", "attention heads (divides n_embd)",
                                  [](Config& c) -> int& { return c.model.n_head; }, 1));
  keys.push_back(integer_key<int>("n_embd", "model", "model width C",
                                  [](Config& c) -> int& { return c.model.n_embd; }, 1));
  keys.push_back(integer_key<int>("seq_len", "model", "context length T of model and batches",
                                  [](Config& c) -> int& { return c.model.seq_len; }, 1));
  keys.push_back(integer_key<int>("vocab_size", "model", "vocabulary V (padded to a multiple of 128 inside)",
                                  [](Config& c) -> int& { return c.model.vocab_size; }, 2));

  keys.push_back(integer_key<int64_t>("steps", "train", "optimizer steps to run",
                                      [](Config& c) -> int64_t& { return c.train.steps; }, 1));
  keys.push_back(integer_key<uint64_t>("seed", "train", "seed of initial weights and synthetic data",
                                       [](Config& c) -> uint64_t& { return c.train.seed; }, 0));
  keys.push_back(integer_key<int>("batch_size", "train", "sequences per micro-batch per data-parallel replica",
                                  [](Config& c) -> int& { return c.train.batch_size; }, 1));
  keys.push_back(integer_key<int>("grad_accum_steps", "train", "micro-batches accumulated per optimizer step",
                                  [](Config& c) -> int& { return c.train.grad_accum_steps; }, 1));
  keys.push_back(float_key("lr", "train", "peak learning rate (after warmup)",
                           [](Config& c) -> double& { return c.train.lr; }, 0.0, 10.0));
  keys.push_back(float_key("min_lr", "train", "learning rate at the end of the cosine decay",
                           [](Config& c) -> double& { return c.train.min_lr; }, 0.0, 10.0));
  keys.push_back(integer_key<int64_t>("warmup_steps", "train", "linear warmup steps",
                                      [](Config& c) -> int64_t& { return c.train.warmup_steps; }, 0));
  keys.push_back(float_key("weight_decay", "train", "AdamW decoupled weight decay on 2-D weights",
                           [](Config& c) -> double& { return c.train.weight_decay; }, 0.0, 10.0));
  keys.push_back(float_key("beta1", "train", "AdamW first-moment decay",
                           [](Config& c) -> double& { return c.train.beta1; }, 0.0, 0.999999));
  keys.push_back(float_key("beta2", "train", "AdamW second-moment decay",
                           [](Config& c) -> double& { return c.train.beta2; }, 0.0, 0.999999));
  keys.push_back(float_key("eps", "train", "AdamW epsilon",
                           [](Config& c) -> double& { return c.train.eps; }, 1e-30, 1.0));
  keys.push_back(float_key("grad_clip_norm", "train", "global gradient-norm clip; none disables",
                           [](Config& c) -> double& { return c.train.grad_clip_norm; }, 1e-12, inf, "none"));
  keys.push_back(float_key("init_std", "train", "std of the normal initial weights",
                           [](Config& c) -> double& { return c.train.init_std; }, 1e-12, 10.0));

  keys.push_back(string_key("train_data", "data", "glob of token shards (llm.c format); empty = synthetic",
                            [](Config& c) -> std::string& { return c.data.train_data; }));
  keys.push_back(string_key("val_data", "data", "glob of validation shards; empty = synthetic or none",
                            [](Config& c) -> std::string& { return c.data.val_data; }));
  keys.push_back(integer_key<int64_t>("eval_every", "data", "steps between validation passes; 0 = never",
                                      [](Config& c) -> int64_t& { return c.data.eval_every; }, 0));
  keys.push_back(integer_key<int>("eval_batches", "data", "micro-batches per replica in a validation pass",
                                  [](Config& c) -> int& { return c.data.eval_batches; }, 1));
  keys.push_back(integer_key<int>("synthetic_branching", "data",
                                  "successors per token of the synthetic source (loss floor ln of it)",
                                  [](Config& c) -> int& { return c.data.synthetic_branching; }, 1));
  keys.push_back(word_key("tokenizer", "data",
                          "tokenizer of the data, for samples and the checkpoint; auto = the shards' header says",
                          [](Config& c) -> std::string& { return c.data.tokenizer; }, {"auto", "byte", "gpt2"}));
  keys.push_back(string_key("vocab", "data",
                            "GPT-2 vocabulary: folder with vocab.json + merges.txt (or encoder.json + vocab.bpe) "
                            "or a tiktoken ranks file; needed when the tokenizer is gpt2",
                            [](Config& c) -> std::string& { return c.data.vocab; }));

  keys.push_back(integer_key<int>("tp_size", "parallel", "tensor-parallel ranks",
                                  [](Config& c) -> int& { return c.parallel.tp_size; }, 1, "auto"));
  keys.push_back(integer_key<int>("pp_stages", "parallel", "pipeline stages",
                                  [](Config& c) -> int& { return c.parallel.pp_stages; }, 1, "auto"));
  keys.push_back(integer_key<int>("dp_size", "parallel", "data-parallel replicas",
                                  [](Config& c) -> int& { return c.parallel.dp_size; }, 1, "auto"));
  keys.push_back(integer_key<int>("threads", "parallel", "host BLAS threads per rank",
                                  [](Config& c) -> int& { return c.parallel.threads; }, 1, "auto"));

  keys.push_back(integer_key<int>("zero_stage", "parallel", "0, or 1: AdamW state sharded over dp",
                                  [](Config& c) -> int& { return c.parallel.zero_stage; }, 0));
  keys.push_back(choice_key<Recompute>("recompute", "parallel",
                                       "activation recomputation in backward: none, selective or full",
                                       [](Config& c) -> Recompute& { return c.parallel.recompute; },
                                       {"none", "selective", "full"}));
  keys.push_back(bool_key("optimizer_offload", "parallel",
                          "fp32 master weights and AdamW moments in host memory; AdamW runs on the host",
                          [](Config& c) -> bool& { return c.parallel.optimizer_offload; }));
  keys.push_back(bool_key("offload_overlap", "parallel",
                          "with optimizer_offload and dp = 1: gradients copied to the host as each becomes final "
                          "in the backward, into a host copy of them (4 B per parameter more host memory)",
                          [](Config& c) -> bool& { return c.parallel.offload_overlap; }));
  keys.push_back(integer_key<int>("world_size", "parallel", "ranks assumed by --dry-run; auto = this job's",
                                  [](Config& c) -> int& { return c.parallel.world_size; }, 1, "auto"));
  keys.push_back(memory_key("device_memory", "memory per rank for the fit check; auto = this host's free RAM / its ranks",
                             &ParallelConfig::device_memory));
  keys.push_back(memory_key("host_memory",
                            "host memory per node for the fit check (optimizer offload's state, pinned); auto = this "
                            "host's RAM, unknown for a --gpu what-if",
                            &ParallelConfig::host_memory));

  keys.push_back(string_key("run_dir", "run", "directory for metrics.jsonl and config.toml",
                            [](Config& c) -> std::string& { return c.run.run_dir; }));
  keys.push_back(integer_key<int64_t>("log_every", "run", "console line every this many steps",
                                      [](Config& c) -> int64_t& { return c.run.log_every; }, 1));
  keys.push_back(integer_key<int64_t>("checkpoint_every", "run",
                                      "steps between checkpoints; 0 = only at the end (final_checkpoint) and on SIGTERM/SIGUSR1",
                                      [](Config& c) -> int64_t& { return c.run.checkpoint_every; }, 0));
  keys.push_back(bool_key("final_checkpoint", "run",
                           "checkpoint after the last step; false for benchmarks (signals still checkpoint)",
                           [](Config& c) -> bool& { return c.run.final_checkpoint; }));
  keys.push_back(integer_key<int>("keep_last", "run", "complete checkpoints kept in <run_dir>/ckpt; 0 = all",
                                  [](Config& c) -> int& { return c.run.keep_last; }, 0));
  keys.push_back(string_key("resume", "run", "none, latest (newest in <run_dir>/ckpt, if any), or a checkpoint directory",
                            [](Config& c) -> std::string& { return c.run.resume; }));
  keys.push_back(string_key("init_from", "run",
                            "checkpoint whose weights start this run: step 0, fresh optimizer (fine-tuning; "
                            "xp_ckpt import makes one from Hugging Face GPT-2); a resume wins",
                            [](Config& c) -> std::string& { return c.run.init_from; }));
  keys.push_back(float_key("peak_tflops", "run", "per-rank peak TFLOP/s for MFU; auto = cores x clock x vector FLOP/cycle",
                           [](Config& c) -> double& { return c.run.peak_tflops; }, 1e-6, 1e6, "auto"));
  keys.push_back(bool_key("tensorboard", "run",
                          "also write the metrics and the config as a TensorBoard event file in <run_dir>",
                          [](Config& c) -> bool& { return c.run.tensorboard; }));
  keys.push_back(word_key("gpu_kernels", "run",
                          "GPU build's kernels: fused (hand-written CUDA) or kokkos (portable, for side-by-side "
                          "measurement); CPU builds always run Kokkos",
                          [](Config& c) -> std::string& { return c.run.gpu_kernels; }, {"fused", "kokkos"}));

  keys.push_back(integer_key<int64_t>("sample_every", "sample", "steps between samples printed by rank 0; 0 = never",
                                      [](Config& c) -> int64_t& { return c.sample.sample_every; }, 0));
  keys.push_back(integer_key<int>("sample_tokens", "sample", "tokens generated per sample",
                                  [](Config& c) -> int& { return c.sample.sample_tokens; }, 1));
  keys.push_back(string_key("sample_prompt", "sample", "text each sample continues (prompt + sample_tokens <= seq_len)",
                            [](Config& c) -> std::string& { return c.sample.sample_prompt; }));
  keys.push_back(float_key("temperature", "sample", "softmax temperature of samples; 0 = greedy",
                           [](Config& c) -> double& { return c.sample.temperature; }, 0.0, 100.0));
  keys.push_back(integer_key<int>("top_k", "sample", "sample among the top_k most likely tokens; 0 = all",
                                  [](Config& c) -> int& { return c.sample.top_k; }, 0));
  keys.push_back(float_key("spike_zscore", "guard",
                           "a loss or grad norm this many std above the trailing window is a bad step; none = off",
                           [](Config& c) -> double& { return c.guard.spike_zscore; }, 1e-3, 1e6, "none"));
  keys.push_back(integer_key<int64_t>("spike_window", "guard",
                                      "good steps in the spike test's trailing window (no test until it is full)",
                                      [](Config& c) -> int64_t& { return c.guard.spike_window; }, 2));
  keys.push_back(choice_key<OnBadStep>("on_bad_step", "guard",
                                       "a NaN/Inf or spike step: skip its update, rollback to the newest "
                                       "checkpoint past its data, or stop",
                                       [](Config& c) -> OnBadStep& { return c.guard.on_bad_step; },
                                       {"skip", "rollback", "stop"}));
  keys.push_back(bool_key("rollback_keep_in_memory", "guard",
                          "rollback restores a host-memory copy of the newest checkpoint instead of reading it",
                          [](Config& c) -> bool& { return c.guard.rollback_keep_in_memory; }));
  keys.push_back(integer_key<int>("max_rollbacks", "guard",
                                  "rollbacks allowed within spike_window steps run; one more stops the run",
                                  [](Config& c) -> int& { return c.guard.max_rollbacks; }, 1));
  return keys;
}

}  // namespace

const std::vector<DeckKey>& deck_keys() {
  static const std::vector<DeckKey> keys = make_keys();
  return keys;
}

}  // namespace xp
