/* Our own declarations of the few CUDA driver, NVRTC and cuDNN entry points segkit calls:
 * nothing NVIDIA's is needed to build. Handles are opaque pointers, status codes ints, device
 * addresses 64-bit. scripts/gpu_check.sh compiles abi_check.c, which includes this header and
 * the real ones and _Static_asserts that every constant here equals NVIDIA's. */
#ifndef SEGKIT_CUDA_DECL_H
#define SEGKIT_CUDA_DECL_H
#include <stddef.h>

typedef int sk_CUresult; /* CUDA_SUCCESS = 0 */
typedef int sk_CUdevice;
typedef unsigned long long sk_CUdeviceptr;
typedef void *sk_CUcontext, *sk_CUmodule, *sk_CUfunction, *sk_CUstream;
typedef int sk_nvrtcResult; /* NVRTC_SUCCESS = 0 */
typedef void *sk_nvrtcProgram;
typedef int sk_cudnnStatus; /* CUDNN_STATUS_SUCCESS = 0 */
typedef void *sk_cudnnHandle, *sk_cudnnTensorDesc, *sk_cudnnFilterDesc, *sk_cudnnConvDesc;

enum {
	SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
	SK_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
	SK_CUDNN_DATA_FLOAT = 0,
	SK_CUDNN_TENSOR_NCHW = 0,
	SK_CUDNN_CROSS_CORRELATION = 1,
	SK_CUDNN_DEFAULT_MATH = 0,
	SK_CUDNN_FMA_MATH = 3,
	SK_CUDNN_BATCHNORM_SPATIAL = 1,
	SK_CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
	SK_CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
	SK_CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED = 7,
	SK_CUDNN_CONVOLUTION_BWD_DATA_ALGO_1 = 1,
	SK_CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 = 1,
	SK_CUDNN_DETERMINISTIC = 1
};

/* cudnnConvolution*AlgoPerf_t: algo, status, time, memory, determinism, mathType, reserved[3]. */
typedef struct {
	int algo;
	sk_cudnnStatus status;
	float time;
	size_t memory;
	int determinism;
	int mathType;
	int reserved[3];
} sk_cudnnAlgoPerf;

#endif
