// Hugging Face GPT-2 weights read as ours (io/gpt2_import.hpp): every tensor of a tiny GPT-2 whose
// values encode their own (row, column) comes out in our layout (Conv1D weights transposed, wte padded
// with zero rows, names with or without "transformer."), and files that are not such a GPT-2 are
// refused naming the file and the tensor. The loss-level check against PyTorch is tests/io/test_hf_import.py.
#include "xp/io/gpt2_import.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "support.hpp"

namespace xp::test {
namespace {

constexpr int n_layer = 2, n_embd = 8, seq_len = 3, vocab = 5;

// Hugging Face's names and shapes of a GPT-2 of the size above (prefix included or not).
std::map<std::string, std::vector<int64_t>> hf_shapes(const std::string& prefix) {
  const int64_t C = n_embd;
  std::map<std::string, std::vector<int64_t>> shapes = {{prefix + "wte.weight", {vocab, C}},
                                                        {prefix + "wpe.weight", {seq_len, C}},
                                                        {prefix + "ln_f.weight", {C}},
                                                        {prefix + "ln_f.bias", {C}}};
  for (int layer = 0; layer < n_layer; ++layer) {
    const std::string h = prefix + "h." + std::to_string(layer) + ".";
    shapes[h + "ln_1.weight"] = shapes[h + "ln_1.bias"] = shapes[h + "ln_2.weight"] = shapes[h + "ln_2.bias"] = {C};
    shapes[h + "attn.c_attn.weight"] = {C, 3 * C};
    shapes[h + "attn.c_attn.bias"] = {3 * C};
    shapes[h + "attn.c_proj.weight"] = {C, C};
    shapes[h + "attn.c_proj.bias"] = shapes[h + "mlp.c_proj.bias"] = {C};
    shapes[h + "mlp.c_fc.weight"] = {C, 4 * C};
    shapes[h + "mlp.c_fc.bias"] = {4 * C};
    shapes[h + "mlp.c_proj.weight"] = {4 * C, C};
    shapes[h + "attn.bias"] = {1, 1, seq_len, seq_len};  // the causal-mask buffer
  }
  return shapes;
}

// Element (r, c) of the tensor numbered `tensor` holds tensor·1e4 + r·100 + c: where each value came
// from can be read off it.
float code(size_t tensor, int64_t row, int64_t column) { return float(tensor * 10000 + row * 100 + column); }

std::string write_file(const std::string& path, const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::vector<SafetensorsTensor> tensors;
  for (const auto& [name, shape] : shapes) tensors.push_back({name, "F32", shape, 0, 0});
  write_safetensors(path, tensors, [&](size_t i) {
    const std::vector<int64_t>& shape = tensors[i].shape;
    int64_t count = 1;
    for (int64_t extent : shape) count *= extent;
    const int64_t columns = shape.size() >= 2 ? shape.back() : count;
    std::vector<float> values(count);
    for (int64_t k = 0; k < count; ++k) values[k] = code(i, k / columns, k % columns);
    return values;
  });
  return path;
}

size_t number_of(const std::map<std::string, std::vector<int64_t>>& shapes, const std::string& name) {
  return size_t(std::distance(shapes.begin(), shapes.find(name)));
}

TEST(Gpt2Import, EveryTensorInOurLayout) {
  ScratchDir dir("xp_gpt2_import");
  for (const std::string prefix : {"transformer.", ""}) {
    const auto shapes = hf_shapes(prefix);
    const Gpt2Safetensors weights(write_file(dir.file(prefix + "model.safetensors"), shapes), 2);
    const ModelConfig& model = weights.model();
    EXPECT_EQ(model.n_layer, n_layer);
    EXPECT_EQ(model.n_embd, n_embd);
    EXPECT_EQ(model.seq_len, seq_len);
    EXPECT_EQ(model.vocab_size, vocab);
    EXPECT_EQ(model.n_head, 2);

    const ParameterLayout layout(model);
    const TensorInfo& qkv = layout.find("h.1.attn.qkv.weight");  // ours (3C, C), theirs (C, 3C)
    const std::vector<float> ours = weights.read(qkv);
    const size_t theirs = number_of(shapes, prefix + "h.1.attn.c_attn.weight");
    for (int64_t out = 0; out < 3 * n_embd; ++out)
      for (int64_t in = 0; in < n_embd; ++in) ASSERT_EQ(ours[out * n_embd + in], code(theirs, in, out)) << prefix;

    const TensorInfo& wte = layout.find("wte.weight");
    const std::vector<float> embedding = weights.read(wte);
    ASSERT_EQ(int64_t(embedding.size()), int64_t{model.padded_vocab()} * n_embd);
    const size_t wte_number = number_of(shapes, prefix + "wte.weight");
    for (int64_t row = 0; row < model.padded_vocab(); ++row)
      for (int64_t c = 0; c < n_embd; ++c)
        ASSERT_EQ(embedding[row * n_embd + c], row < vocab ? code(wte_number, row, c) : 0.0f) << row;

    const std::vector<float> bias = weights.read(layout.find("h.0.mlp.fc.bias"));  // 1-D: as stored
    const size_t bias_number = number_of(shapes, prefix + "h.0.mlp.c_fc.bias");
    for (int64_t k = 0; k < 4 * n_embd; ++k) ASSERT_EQ(bias[k], code(bias_number, 0, k));
  }
}

TEST(Gpt2Import, NHeadFromConfigJsonOrNEmbdOver64) {
  ScratchDir dir("xp_gpt2_import_heads");
  const std::string path = write_file(dir.file("model.safetensors"), hf_shapes("transformer."));
  // n_embd 8 is no multiple of 64: without config.json the default cannot apply.
  EXPECT_NE(input_error([&] { Gpt2Safetensors weights(path); }).find("give --n_head"), std::string::npos);
  std::ofstream(dir.file("config.json")) << R"({"n_head": 4, "n_layer": 2, "n_positions": 3})";
  const Gpt2Safetensors weights(path);
  EXPECT_EQ(weights.model().n_head, 4);
  EXPECT_NE(weights.n_head_source().find("config.json"), std::string::npos);
  EXPECT_EQ(Gpt2Safetensors(path, 8).model().n_head, 8);  // --n_head wins
  EXPECT_NE(input_error([&] { Gpt2Safetensors bad(path, 3); }).find("not divisible by n_head 3"), std::string::npos);
}

TEST(Gpt2Import, WhatIsNotThisGpt2IsRefusedByName) {
  ScratchDir dir("xp_gpt2_import_refusals");
  const auto refusal = [&](const std::string& name, std::map<std::string, std::vector<int64_t>> shapes) {
    return input_error([&] { Gpt2Safetensors weights(write_file(dir.file(name), shapes), 2); });
  };
  auto twice = hf_shapes("transformer.");
  twice["ln_f.bias"] = {n_embd};
  EXPECT_NE(refusal("twice.safetensors", twice).find("holds 'ln_f.bias' twice"), std::string::npos);
  auto extra = hf_shapes("");
  extra["h.0.attn.c_attn.lora"] = {n_embd};
  EXPECT_NE(refusal("extra.safetensors", extra).find("'h.0.attn.c_attn.lora' is not part of a GPT-2"),
            std::string::npos);
  auto wrong = hf_shapes("");
  wrong["h.1.mlp.c_proj.weight"] = {n_embd, 4 * n_embd};  // Linear's (out, in): not Hugging Face's layout
  const std::string message = refusal("wrong.safetensors", wrong);
  EXPECT_NE(message.find("wrong.safetensors"), std::string::npos) << message;
  EXPECT_NE(message.find("'h.1.mlp.c_proj.weight' has shape [8, 32]"), std::string::npos) << message;
  auto untied = hf_shapes("");
  untied["lm_head.weight"] = {vocab, n_embd};  // numbered apart from wte, so its values differ
  EXPECT_NE(refusal("untied.safetensors", untied).find("lm_head.weight differs"), std::string::npos);
  auto no_wpe = hf_shapes("");
  no_wpe.erase("wpe.weight");
  EXPECT_NE(refusal("no_wpe.safetensors", no_wpe).find("no tensor 'wpe.weight'"), std::string::npos);
}

}  // namespace
}  // namespace xp::test
