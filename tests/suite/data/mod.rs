//! Data sets: the synthetic generator and the validation split, the IDX and CIFAR file
//! readers, image data sets as a run sees them, and training on the real MNIST.

mod download;
mod files;
mod hostile;
mod mnist_training;
mod synthetic;
mod vision;
