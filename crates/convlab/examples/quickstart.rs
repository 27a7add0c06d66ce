//! The README's library example, compiled by `cargo test` so it stays true.

use convlab::{
    autograd::Var,
    nn::*,
    ops,
    optim::{Optimizer, Sgd},
    seeded_rng, Tensor,
};

fn main() -> convlab::Result<()> {
    // The book's first cell.
    let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
    let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
    println!("{}", ops::corr2d(&x, &k)?);

    // Layers, autograd and an optimizer, as in PyTorch.
    let mut rng = seeded_rng(0);
    let net = Sequential::new()
        .push(Conv2d::new(
            Conv2dConfig::new(1, 16, 3).padding(1),
            &mut rng,
        )?)
        .push(ReLU)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Linear::new(16 * 4 * 4, 10, &mut rng)?);
    let mut opt = Sgd::new(net.parameters(), 0.05)?.momentum(0.9)?;
    let images = Var::new(Tensor::rand(&[32, 1, 8, 8], &mut rng)?);
    let labels: Vec<usize> = (0..32).map(|i| i % 10).collect();
    opt.zero_grad();
    let loss = net.forward(&images)?.cross_entropy(&labels)?;
    loss.backward()?;
    opt.step()?;
    println!("loss {:.4}", loss.item()?);
    let path = std::env::temp_dir().join("convlab-quickstart.safetensors");
    convlab::io::save_state_dict(&path, &net)?;
    let names: Vec<String> = net.named_parameters().into_iter().map(|(n, _)| n).collect();
    println!("saved {} as {}", names.join(", "), path.display());
    Ok(())
}
