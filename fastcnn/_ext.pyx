# cython: language_level=3
"""fastcnn._ext: the thin Cython binding over csrc/.

Each kernel family has its own ``_ext_*.pxi`` (declarations + ``def`` wrappers).
Wrappers take already-validated, C-contiguous float32 arrays (fastcnn.ops does the
checking), release the GIL and call the C kernel; outputs are preallocated by the caller.
"""
include "_ext_runtime.pxi"
include "_ext_gemm.pxi"
include "_ext_conv.pxi"
include "_ext_depthwise.pxi"
include "_ext_pool.pxi"
include "_ext_nn.pxi"
include "_ext_activations.pxi"
include "_ext_optim.pxi"
include "_ext_data.pxi"
include "_ext_merge.pxi"
include "_ext_losses.pxi"
include "_ext_penalty.pxi"
include "_ext_augment.pxi"
include "_ext_metrics.pxi"
include "_ext_layers.pxi"
include "_ext_upsample.pxi"
include "_ext_transpose.pxi"
include "_ext_fold.pxi"
include "_ext_plan.pxi"
