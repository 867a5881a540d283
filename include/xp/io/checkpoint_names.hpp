#pragma once
// Every name in a checkpoint, for its writer, its reader and xp_ckpt: the step directories (and the
// hidden names a directory has while it is written, replaced or deleted), the files in one, and the
// paths of the datasets and groups inside them. See io/checkpoint.hpp for the layout.
#include <cstdint>
#include <string>

namespace xp {

constexpr const char* checkpoint_folder_name = "ckpt";  // <run_dir>/ckpt holds a run's step directories

// step_NNNNNN
std::string step_dir_name(int64_t step);

// A step directory in transition: "." + step_dir_name(step) + suffix.
constexpr const char* partial_suffix = ".partial";    // being written
constexpr const char* replaced_suffix = ".replaced";  // a save of the same step is taking its place
constexpr const char* deleting_suffix = ".deleting";  // being removed
std::string hidden_step_dir_name(int64_t step, const char* suffix);

// The step of "step_NNNNNN" (suffix "") or of ".step_NNNNNN<suffix>" for one of the suffixes above
// (suffix set to it); -1 for any other name.
int64_t parse_step_dir(const std::string& name, std::string& suffix);

constexpr const char* index_file_name = "index.h5";
// shard_ppSS_tpRR.h5: what tensor-parallel rank `tp_rank` of pipeline stage `stage` holds.
std::string shard_file_name(int stage, int tp_rank);

// AdamW state stored next to each parameter.
enum class Moment { Param, ExpAvg, ExpAvgSq };
constexpr Moment all_moments[] = {Moment::Param, Moment::ExpAvg, Moment::ExpAvgSq};
const char* moment_name(Moment moment);  // "param", "exp_avg", "exp_avg_sq"

// In a shard: /<moment>/<tensor>.
std::string shard_dataset_path(Moment moment, const std::string& tensor);
// In the index: /stage_S, the group of stage S's full tensors (its attributes hold the stage map);
// /stage_S/<tensor> and /optimizer/<moment>/stage_S/<tensor>, the full tensors.
std::string stage_group_path(int stage);
std::string index_dataset_path(Moment moment, int stage, const std::string& tensor);
// In the index: /shards/<shard file>, whose attributes hold the shard's size and CRC-32.
std::string shard_record_path(const std::string& shard_file);

}  // namespace xp
