#pragma once
// Only the weights of a checkpoint (no AdamW moments), for inference: this rank's slice of every tensor
// of `layout`, read chunk by chunk through the index's virtual datasets like load_checkpoint_tensors
// (io/checkpoint.hpp), so a checkpoint of any (dp, tp, pp) loads into any tensor-parallel layout.
#include <cstdint>
#include <string>

#include "xp/core/types.hpp"
#include "xp/io/checkpoint.hpp"
#include "xp/model/layout.hpp"

namespace xp {

// params (at least layout.total() floats) = this rank's weights from checkpoint `dir`; throws InputError
// when the index lacks a tensor. Verify the checkpoint first (read_checkpoint_state).
void load_checkpoint_weights(const std::string& dir, const ParameterLayout& layout, const FloatBuffer& params,
                             int64_t chunk_bytes = checkpoint_chunk_bytes);

}  // namespace xp
