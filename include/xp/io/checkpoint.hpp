#pragma once
// Sharded HDF5 checkpoints. A checkpoint is a directory <run_dir>/ckpt/step_NNNNNN written under a
// temporary name and renamed only when every shard and the index are complete, so a crash at any
// moment leaves the previous checkpoint intact and the partial one ignored.
//
//   step_000100/shard_pp00_tp00.h5   one file per (pipeline stage, tp rank), written by dp replica 0:
//                                    /param/<name>, /exp_avg/<name>, /exp_avg_sq/<name> (this rank's slices)
//   step_000100/index.h5             format version, step, model config, topology, seed, data cursor,
//                                    per-shard size and CRC-32, the stage map (attributes first_layer,
//                                    last_layer, has_embedding, has_head of each group /stage_S), and each
//                                    full tensor by name as an HDF5 virtual dataset over the shards:
//                                    /stage_0/h.0.attn.qkv.weight, /optimizer/exp_avg/stage_0/..., with
//                                    its split recorded
// (names: io/checkpoint_names.hpp). The stage map is the one the writing ranks held, so loading never
// depends on how a later version partitions layers.
//
// Loading reads this rank's slice of each full tensor through the index (a hyperslab of the virtual
// dataset), so a checkpoint written with one (dp, tp, pp, zero_stage) loads into any other.
//
// State besides tensors: the LR schedule is a function of the step and the recorded configuration;
// random numbers are counter-based (seed, stream, index), so the seed is the whole RNG state; the data
// cursor is global — replica r of any dp reads rows (r·grad_accum_steps + m)·batch_size of the global
// batch at the cursor — so one cursor serves every replica and every later layout.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "xp/config/config.hpp"
#include "xp/io/checkpoint_names.hpp"  // Moment
#include "xp/io/token_source.hpp"
#include "xp/model/layout.hpp"
#include "xp/parallel/grid.hpp"

namespace xp {

// 2: the index records the stage map. 1: it did not (its stage map is read off the tensor names).
constexpr int64_t checkpoint_format_version = 2;
constexpr int64_t oldest_checkpoint_format_version = 1;  // the oldest this build still loads

struct CheckpointState {
  int64_t step = 0;          // optimizer steps done (AdamW's bias correction and the LR schedule)
  DataCursor train_cursor;   // where the next global batch starts
  uint64_t seed = 0;
  Layout layout;             // of the run that wrote it
  int zero_stage = 0;
  std::string config_toml;   // the resolved configuration that wrote it
};

// Host staging of a save or a load. Each tensor moves in chunks of whole rows of this rank's slice,
// at most `chunk_bytes` of floats (one row where a row is larger), through one staging buffer: the
// checkpoint never holds a whole-model copy. A chunk is [begin, end) of the rank's flat buffer
// (ParameterLayout offsets) and rows [first_row, first_row + rows) of the tensor's slice.
constexpr int64_t checkpoint_chunk_bytes = int64_t{64} << 20;
struct TensorChunk {
  int64_t first_row = 0, rows = 0;
  int64_t begin = 0, end = 0;
};
std::vector<TensorChunk> checkpoint_chunks(const TensorInfo& tensor, int64_t chunk_bytes = checkpoint_chunk_bytes);
// Bytes of the staging buffer a save or a load of `layout` uses: its largest chunk. The run plan states it.
int64_t checkpoint_staging_bytes(const ParameterLayout& layout, int64_t chunk_bytes = checkpoint_chunk_bytes);
// Bytes of the staging buffer the latest save or load of this process allocated (tests check the bound).
int64_t checkpoint_staging_last_bytes();

// Where a save takes a chunk from: fills `staging` with [begin, end) of `moment`. Called on every rank
// of the grid for every chunk in the same order, so it may be collective over dp (ZeRO-1 gathers each
// moment slice as it is written); only dp rank 0's staging is written to the file.
using ChunkSource = std::function<void(Moment moment, int64_t begin, int64_t end, float* staging)>;
// Where a load puts a chunk: [begin, end) of `moment` of this rank's slices.
using ChunkSink = std::function<void(Moment moment, int64_t begin, int64_t end, const float* staging)>;

// Collective over the grid. Writes <run_dir>/ckpt/step_NNNNNN and keeps the newest `keep_last`
// complete checkpoints (0 = all). Returns the directory. Aborts the job on I/O errors.
// `layout` is this rank's (its slices of its stage).
std::string save_checkpoint(const std::string& run_dir, const ParallelGrid& grid, const ModelConfig& model,
                            const ParameterLayout& layout, const ChunkSource& source, const CheckpointState& state,
                            int keep_last, int64_t chunk_bytes = checkpoint_chunk_bytes);

// The newest complete checkpoint under <run_dir>/ckpt, or "" when there is none.
std::string latest_checkpoint(const std::string& run_dir);

// Reads a checkpoint's state and verifies it: index present, format version, the model shape equal to
// `model`, and (verify_shards) every shard present with its recorded size and CRC-32 — a whole read of
// the checkpoint, which one rank of a job does for all. Throws InputError naming the file and the
// problem.
CheckpointState read_checkpoint_state(const std::string& dir, const ModelConfig& model, bool verify_shards = true);

// Gives `sink` this rank's tensors, chunk by chunk, from a checkpoint verified by read_checkpoint_state
// (any layout); only the parameters, without the AdamW moments, when `with_moments` is false.
void load_checkpoint_tensors(const std::string& dir, const ParameterLayout& layout, const ChunkSink& sink,
                             int64_t chunk_bytes = checkpoint_chunk_bytes, bool with_moments = true);

}  // namespace xp
