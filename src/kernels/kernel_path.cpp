#include "xp/kernels/kernel_path.hpp"

namespace xp {
namespace {
KernelPath chosen_path = KernelPath::Fused;
}  // namespace

void set_kernel_path(KernelPath path) { chosen_path = path; }
KernelPath kernel_path() { return chosen_path; }

}  // namespace xp
