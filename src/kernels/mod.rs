//! The fused CPU ops, kept apart from the layers that call them (the shape of
//! candle-nn: layers are plain structs, the ops they dispatch to live elsewhere). Each
//! op is a candle custom op with its own backward pass, bit-for-bit deterministic; on
//! other devices and dtypes the layers use candle's ops instead.
//!
//! - [`cpu`]: storage slices, gemm into (strided) views, vectorised loops and sums, and
//!   the one dtype dispatch every op uses ([`cpu::with_float`]);
//! - [`dense`], [`conv`] (by [`im2col`] or by kernel [`offsets`]), [`pool`],
//!   [`batch_norm`], [`residual`]: the layers' ops;
//! - [`optim`]: the in-place SGD and AdamW updates. The losses' fused op lives with the
//!   losses ([`crate::loss`]).

mod activation;
pub mod batch_norm;
pub mod conv;
pub mod cpu;
pub mod dense;
pub mod im2col;
pub mod offsets;
pub mod optim;
pub mod pool;
pub mod residual;

pub use activation::Activation;
