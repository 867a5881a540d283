#pragma once
// TensorBoard event files: `tensorboard = true` makes rank 0 write <run_dir>/events.out.tfevents.<time>.<host>.<pid>
// (TensorBoard reads every file whose name holds "tfevents"; the pid keeps a resumed run that starts within
// the same second from overwriting its predecessor's file). The file is TFRecord-framed Event messages
// (src/train/tensorboard_event.proto), each record flushed when written, so a crashed run leaves a
// readable file up to its last step.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace xp {

// CRC-32C (Castagnoli), the checksum TFRecord frames use, and the masked form they store (rotated and
// offset, so that a CRC over data holding CRCs stays well distributed).
uint32_t crc32c(const void* data, std::size_t size);
uint32_t masked_crc32c(const void* data, std::size_t size);

class TensorBoardWriter {
 public:
  // Creates the event file in `run_dir` and writes its first record, file_version "brain.Event:2".
  explicit TensorBoardWriter(const std::string& run_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One Event at `step` holding every (tag, value) as a scalar (TensorBoard stores them as float32).
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  // A text summary (Markdown), shown by TensorBoard's text plugin.
  void text(int64_t step, const std::string& tag, const std::string& markdown);

  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);  // TFRecord frame, then flush

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace xp
