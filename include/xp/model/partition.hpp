#pragma once
// Which transformer blocks each pipeline stage runs. Stages take contiguous blocks of layers; stage 0
// also holds the token/position embedding, the last stage the final LayerNorm and the LM head.
#include <cstdint>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/model/layout.hpp"

namespace xp {

struct StageRange {
  int first_layer = 0;
  int last_layer = 0;  // exclusive
  bool has_embedding = false;
  bool has_head = false;
  int layers() const { return last_layer - first_layer; }
};

// Relative cost of one block and of each end of the model (weights, grads and AdamW state scale with
// parameters; the attention term with seq_len). The tied wte weighs on both the first and last stage.
int64_t block_cost(const ModelConfig& model);      // 12·C² + 2·T·C
int64_t embedding_cost(const ModelConfig& model);  // Vp·C (and the same for the LM head)

// Splits n_layer blocks into `stages` contiguous ranges, each at least one layer, minimising the
// largest stage cost exactly; among equal optima earlier stages get fewer layers. Throws InputError
// when stages < 1 or stages > n_layer.
std::vector<StageRange> partition_layers(const ModelConfig& model, int stages);

// The share of the model that tensor-parallel rank `tp_rank` of pipeline stage `stage` holds.
Placement placement_of(const StageRange& stage, int tp_size, int tp_rank);

}  // namespace xp
