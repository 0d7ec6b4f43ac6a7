//! candle's backward pass as built here (vendor/candle-core: a tensor's first gradient is
//! stored, not added to zeros): gradients that arrive as views are stored contiguous, so
//! the backward rules that need contiguous gradients (scatter-add, index-add) still work,
//! and the values are those of the plain definition.

use candle_core::{Device, IndexOp, Tensor, Var};

#[test]
fn gathers_index_selects_and_views_differentiate_after_a_sum() {
    let dev = Device::Cpu;
    let x = Var::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &dev).unwrap();

    // gather → sum: the sum's gradient is a broadcast view; scatter-add needs it contiguous.
    let idx = Tensor::new(&[[0u32], [2]], &dev).unwrap();
    let grads = x
        .gather(&idx, 1)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(
        g.to_vec2::<f64>().unwrap(),
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    );

    // index_select → mean: index-add needs a contiguous gradient too.
    let rows = Tensor::new(&[1u32, 1, 0], &dev).unwrap();
    let grads = x
        .index_select(&rows, 0)
        .unwrap()
        .mean_all()
        .unwrap()
        .backward()
        .unwrap();
    let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
    let ninth = 1.0 / 9.0;
    assert_eq!(g, [[ninth; 3], [2.0 * ninth; 3]]);

    // A transpose and a narrow: the first gradients are views, stored contiguous.
    let w = Tensor::new(&[[1.0f64, 10.0], [100.0, 1000.0], [0.5, 0.25]], &dev).unwrap();
    let y = (x.as_tensor().t().unwrap() * &w)
        .unwrap()
        .i((.., 1))
        .unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap();
    assert!(g.is_contiguous());
    assert_eq!(
        g.to_vec2::<f64>().unwrap(),
        [[0.0; 3], [10.0, 1000.0, 0.25]]
    );

    // A tensor used twice: the second gradient is added to the first.
    let z = (x.as_tensor() * x.as_tensor()).unwrap().sum_all().unwrap();
    let grads = z.backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(g, [[2.0, 4.0, 6.0], [8.0, 10.0, 12.0]]);
}
