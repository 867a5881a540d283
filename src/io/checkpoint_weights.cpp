#include "xp/io/checkpoint_weights.hpp"

#include <vector>

#include "xp/core/error.hpp"
#include "xp/core/host_copy.hpp"
#include "xp/io/checkpoint_inspect.hpp"

namespace xp {

void load_checkpoint_weights(const std::string& dir, const ParameterLayout& layout, const FloatBuffer& params,
                             int64_t chunk_bytes) {
  const CheckpointIndex index(dir);
  const Placement& placement = layout.placement();
  std::vector<float> staging(static_cast<size_t>(checkpoint_staging_bytes(layout, chunk_bytes) / sizeof(float)));
  for (const TensorInfo& tensor : layout.tensors()) {
    const IndexTensor* saved = index.find(tensor.name);
    if (!saved) throw InputError("checkpoint '" + dir + "' has no tensor '" + tensor.name + "'");
    for (const TensorChunk& chunk : checkpoint_chunks(tensor, chunk_bytes)) {
      index.read_slice(*saved, Moment::Param, tensor, placement.tp_rank, placement.tp_size, staging.data(),
                       chunk.first_row, chunk.rows);
      copy_from_host(staging.data(), chunk.begin, chunk.end, 0, params);
    }
  }
}

}  // namespace xp
