//! An explicit training path for GPT-2-layout decoders on the CPU: hand-written forward and
//! backward kernels over buffers allocated once, matrix products through `gemm`. candle's
//! autograd allocates every intermediate and reduces broadcast gradients on one thread; for the
//! small networks a CPU trains, that overhead is most of a step (see shared/CANDLE-NOTES.md).

pub mod gpt2;
pub mod kernels;
pub mod matmul;
