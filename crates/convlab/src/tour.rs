//! The tour (`convlab tour`, `convlab.tour()` in Python): *Dive into Deep
//! Learning* ch. 6.2–6.5, cell by cell, with the book's numbers. Every cell
//! is one line saying what it shows (`# ...`) followed by tensors in
//! PyTorch's print format, so the output can be held next to the book.
//! Everything is computed here; nothing is pasted.
//!
//! ```
//! let text = convlab::tour::render()?;
//! assert!(text.starts_with("# 6.2.1 corr2d"));
//! assert!(text.contains("tensor([[19., 25.],\n        [37., 43.]])"));
//! # Ok::<(), convlab::Error>(())
//! ```

use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::learn::{learn_kernel, KernelMode, LearnOptions, LearningRate, Outcome};
use crate::nn::{Conv2d, Conv2dConfig, Module};
use crate::ops::{self, AvgPool2dParams, Conv2dParams, MaxPool2dParams, UnfoldParams};
use crate::{seeded_rng, Pair, Tensor};
use std::fmt::Write;

/// The output being built: cells of a title line and bodies.
struct Page(String);

impl Page {
    /// Start a cell: a blank line (except first) and `# title`.
    fn cell(&mut self, title: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "# {title}");
    }
    /// A note inside a cell, also a `#` line.
    fn note(&mut self, text: &str) {
        let _ = writeln!(self.0, "# {text}");
    }
    /// Body text (a tensor, a size, a message).
    fn line(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{text}");
    }
}

/// `torch.Size([8, 8])`.
fn size(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    format!("torch.Size([{}])", dims.join(", "))
}

/// The book's hand-written `Conv2D` (§6.2.2): a weight and a bias as
/// parameters; forward is `corr2d(x, weight) + bias` on matrices.
struct Conv2D {
    weight: Var,
    bias: Var,
}

impl Conv2D {
    fn forward(&self, x: &Var) -> Result<Var> {
        x.corr2d(&self.weight)?.add(&self.bias)
    }
}

/// The book's 6x8 image: ones with a dark band in columns 2..6.
fn edge_image() -> Result<Tensor> {
    let mut x = Tensor::ones(&[6, 8])?;
    for row in x.data_mut().chunks_mut(8) {
        row[2..6].fill(0.0);
    }
    Ok(x)
}

/// Channel `i` of a `[C, H, W]` tensor as an `[H, W]` matrix.
fn channel(t: &Tensor, i: usize) -> Result<Tensor> {
    let (h, w) = (t.shape()[1], t.shape()[2]);
    Tensor::from_slice(&t.data()[i * h * w..(i + 1) * h * w], &[h, w])
}

/// The book's `corr2d_multi_in`: correlate each channel with its kernel, sum.
fn corr2d_multi_in(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    let mut acc = ops::corr2d(&channel(x, 0)?, &channel(k, 0)?)?;
    for c in 1..x.shape()[0] {
        acc = acc.add(&ops::corr2d(&channel(x, c)?, &channel(k, c)?)?)?;
    }
    Ok(acc)
}

/// The book's `corr2d_multi_in_out`: one `corr2d_multi_in` per output
/// channel of the `[C_out, C_in, kh, kw]` kernel, stacked.
fn corr2d_multi_in_out(x: &Tensor, k: &Tensor) -> Result<Tensor> {
    let per_out = k.numel() / k.shape()[0];
    let inner = &k.shape()[1..];
    let ys = (0..k.shape()[0])
        .map(|o| {
            let ko = Tensor::from_slice(&k.data()[o * per_out..(o + 1) * per_out], inner)?;
            corr2d_multi_in(x, &ko)
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::stack(&ys.iter().collect::<Vec<_>>(), 0)
}

/// The book's hand-written `pool2d` on a matrix.
fn pool2d(x: &Tensor, (ph, pw): (usize, usize), max: bool) -> Result<Tensor> {
    let [h, w] = x.dims2("pool2d")?;
    let (oh, ow) = (h - ph + 1, w - pw + 1);
    let mut out = vec![0.0; oh * ow];
    for i in 0..oh {
        for j in 0..ow {
            let window = (i..i + ph).flat_map(|a| (j..j + pw).map(move |b| x.data()[a * w + b]));
            out[i * ow + j] = if max {
                window.fold(f32::NEG_INFINITY, f32::max)
            } else {
                window.sum::<f32>() / (ph * pw) as f32
            };
        }
    }
    Tensor::from_vec(out, &[oh, ow])
}

/// The doubly-blocked Toeplitz matrix `T` with `corr2d(X, K) = T · vec(X)`:
/// row `i*ow + j` holds `K[a, b]` at column `(i+a)*w + (j+b)`, so each block
/// row of `T` is a Toeplitz band and the blocks repeat down the diagonal.
fn toeplitz(k: &Tensor, (h, w): (usize, usize)) -> Result<Tensor> {
    let [kh, kw] = k.dims2("toeplitz")?;
    let (oh, ow) = (h - kh + 1, w - kw + 1);
    let mut t = vec![0.0; oh * ow * h * w];
    for i in 0..oh {
        for j in 0..ow {
            for a in 0..kh {
                for b in 0..kw {
                    t[(i * ow + j) * h * w + (i + a) * w + (j + b)] = k.data()[a * kw + b];
                }
            }
        }
    }
    Tensor::from_vec(t, &[oh * ow, h * w])
}

/// `max |a - b|` and whether it is within f32 rounding.
fn compare(a: &Tensor, b: &Tensor) -> Result<String> {
    let d = a.max_abs_diff(b)?;
    Ok(format!("max |difference| = {d:.1e}, equal: {}", d < 1e-5))
}

/// Binomial coefficient `C(n, k)`.
fn binomial(n: usize, k: usize) -> f32 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f32 / (i + 1) as f32)
}

/// Writes the tour to `out` (an error computing it is reported as an
/// [`std::io::ErrorKind::Other`] error).
pub fn write_tour(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let text = render().map_err(std::io::Error::other)?;
    out.write_all(text.as_bytes())
}

/// The whole tour as text.
///
/// # Errors
/// None on a working build: every cell computes with valid shapes; an error
/// would be a bug in an op the tour calls.
pub fn render() -> Result<String> {
    let mut p = Page(String::new());
    sec_6_2(&mut p)?;
    sec_6_3(&mut p)?;
    sec_6_4(&mut p)?;
    sec_6_5(&mut p)?;
    exercises(&mut p)?;
    mistakes(&mut p)?;
    Ok(p.0)
}

/// §6.2: cross-correlation, the Conv2D layer, edges, learning a kernel,
/// convolution, receptive fields.
fn sec_6_2(p: &mut Page) -> Result<()> {
    let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
    let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
    p.cell("6.2.1 corr2d: the book's 3x3 input X = arange(9) cross-correlated with K = [[0, 1], [2, 3]]");
    p.line(ops::corr2d(&x, &k)?);

    p.cell("6.2.2 Conv2D: the hand-written layer (weight and bias are parameters; forward = corr2d(x, weight) + bias), weight = K, bias = 0.5");
    let layer = Conv2D {
        weight: Var::param(k.clone()),
        bias: Var::param(Tensor::from_slice(&[0.5], &[1])?),
    };
    p.line(layer.forward(&Var::new(x.clone()))?);

    p.cell("6.2.3 edge detection: a 6x8 image, ones except a dark band in columns 2..6");
    let img = edge_image()?;
    p.line(&img);
    let kedge = Tensor::from_rows(&[[1.0, -1.0]])?;
    p.note("K = [[1, -1]]: corr2d(X, K) is 1 at the white→black edge, -1 at the black→white edge, 0 elsewhere");
    let y = ops::corr2d(&img, &kedge)?;
    p.line(&y);
    p.note("the transposed image X.t() has only horizontal edges; K sees vertical ones only: all zeros");
    p.line(ops::corr2d(&img.t()?, &kedge)?);
    p.note("a diagonal line eye(8) with K.t() = [[1], [-1]] (pixel minus the one below): +1 on the line, -1 just above it; a diagonal is a horizontal edge at every column");
    p.line(ops::corr2d(&Tensor::eye(8)?, &kedge.t()?)?);

    p.cell("6.2.4 learning a kernel: a 1x2 kernel from w0 = [0.3, 0.7], lr 3e-2, 10 steps of gradient descent on the summed squared error (the book's loop)");
    let w0 = Tensor::from_rows(&[[0.3, 0.7]])?;
    let opts = LearnOptions::new((1, 2))
        .init(w0.clone())
        .lr(LearningRate::Fixed(3e-2))
        .steps(10);
    let mut log = Vec::new();
    let corr = learn_kernel(&img, &y, &opts, |i, l| {
        if (i + 1) % 2 == 0 {
            log.push(format!("epoch {}, loss {l:.3}", i + 1));
        }
    })?;
    log.iter().for_each(|l| p.line(l));
    p.note("the learned kernel, close to [1, -1]");
    p.line(&corr.kernel);
    p.note("weight and bias together with the hand-written Conv2D's parameters: w0 = [-0.5, 0.2], b0 = 0.4, lr 0.01, 20 steps");
    let opts_b = LearnOptions::new((1, 2))
        .init(Tensor::from_rows(&[[-0.5, 0.2]])?)
        .bias(true)
        .init_bias(0.4)
        .lr(LearningRate::Fixed(0.01))
        .steps(20);
    let mut log = Vec::new();
    let with_bias = learn_kernel(&img, &y, &opts_b, |i, l| {
        if (i + 1) % 4 == 0 {
            log.push(format!("epoch {}, loss {l:.3}", i + 1));
        }
    })?;
    log.iter().for_each(|l| p.line(l));
    p.line(format!("weight {}", with_bias.kernel));
    let b = with_bias
        .bias
        .ok_or_else(|| Error::autograd("tour", "the bias run learned no bias"))?;
    p.line(format!("bias {}", Tensor::from_slice(&[b], &[1])?));

    p.cell("6.2.5 cross-correlation versus convolution: convolve2d flips the kernel, so convolve2d(X, flip(K)) equals corr2d(X, K)");
    let flipped = Tensor::from_rows(&[[3.0, 2.0], [1.0, 0.0]])?;
    p.note("corr2d(X, K)");
    p.line(ops::corr2d(&x, &k)?);
    p.note("convolve2d(X, flip(K)), flip(K) = [[3, 2], [1, 0]]");
    p.line(ops::convolve2d(&x, &flipped)?);
    p.note("a layer computing a true convolution, trained as in 6.2.4 (from flip(w0)), learns the flipped kernel, close to [-1, 1]");
    let conv_opts = opts
        .clone()
        .init(Tensor::from_rows(&[[0.7, 0.3]])?)
        .mode(KernelMode::Convolution);
    let conv = learn_kernel(&img, &y, &conv_opts, |_, _| {})?;
    p.line(&conv.kernel);
    p.line(format!(
        "same losses as the correlation layer: {}",
        conv.losses == corr.losses
    ));

    p.cell("6.2.6 receptive field: two stacked 3x3 convolutions on a 7x7 input; the gradient of the output element y2[1, 1] marks the inputs it sees (each count = paths through the layer between)");
    let input = Var::param(Tensor::zeros(&[7, 7])?);
    let ones3 = Var::new(Tensor::ones(&[3, 3])?);
    let y2 = input.corr2d(&ones3)?.corr2d(&ones3)?;
    let mut pick = Tensor::zeros(&y2.shape())?;
    pick.data_mut()[y2.shape()[1] + 1] = 1.0;
    y2.mul(&Var::new(pick))?.sum()?.backward()?;
    let g = input
        .grad()
        .ok_or_else(|| Error::autograd("tour", "the input has no gradient"))?;
    p.line(&g);
    let seen: Vec<(usize, usize)> = (0..49)
        .filter(|&i| g.data()[i] != 0.0)
        .map(|i| (i / 7, i % 7))
        .collect();
    let (r0, r1) = (seen[0].0, seen[seen.len() - 1].0);
    let c0 = seen.iter().map(|s| s.1).min().unwrap_or(0);
    let c1 = seen.iter().map(|s| s.1).max().unwrap_or(0);
    p.line(format!(
        "field of y2[1, 1]: rows {r0}..={r1}, columns {c0}..={c1} ({}x{}); one 3x3 layer sees 3x3, two see 5x5",
        r1 - r0 + 1,
        c1 - c0 + 1
    ));
    Ok(())
}

/// §6.3: output shapes under padding and stride (the book's `comp_conv2d`).
fn sec_6_3(p: &mut Page) -> Result<()> {
    let mut rng = seeded_rng(0);
    let x = Var::new(Tensor::rand(&[1, 1, 8, 8], &mut rng)?);
    let cases: [(&str, Pair, Pair, Pair); 4] = [
        ("6.3.1 padding: Conv2d(1, 1, kernel_size=3, padding=1) on an 8x8 input keeps its size", Pair(3, 3), Pair(1, 1), Pair(1, 1)),
        ("kernel_size=(5, 3), padding=(2, 1): padding (k-1)/2 on each side keeps it too", Pair(5, 3), Pair(2, 1), Pair(1, 1)),
        ("6.3.2 stride: kernel_size=3, padding=1, stride=2 halves it", Pair(3, 3), Pair(1, 1), Pair(2, 2)),
        ("kernel_size=(3, 5), padding=(0, 1), stride=(3, 4): floor((8 - 3 + 0)/3) + 1 = 2, floor((8 - 5 + 2)/4) + 1 = 2", Pair(3, 5), Pair(0, 1), Pair(3, 4)),
    ];
    for (i, (what, k, pad, s)) in cases.into_iter().enumerate() {
        if i == 0 || i == 2 {
            p.cell(what);
        } else {
            p.note(what);
        }
        let conv = Conv2d::new(Conv2dConfig::new(1, 1, k).padding(pad).stride(s), &mut rng)?;
        let y = conv.forward(&x)?;
        p.line(size(&y.shape()[2..]));
    }
    Ok(())
}

/// §6.4: multiple input and output channels, 1x1 convolution.
fn sec_6_4(p: &mut Page) -> Result<()> {
    let x0 = Tensor::arange(9.0)?.reshape(&[3, 3])?;
    let x = Tensor::stack(&[&x0, &x0.map(|v| v + 1.0)], 0)?;
    let k0 = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
    let k = Tensor::stack(&[&k0, &k0.map(|v| v + 1.0)], 0)?;
    p.cell("6.4.1 multiple input channels: X = [arange(9), arange(9) + 1], K = [[[0, 1], [2, 3]], [[1, 2], [3, 4]]]; correlate per channel and sum");
    let y = corr2d_multi_in(&x, &k)?;
    p.line(&y);
    let via_conv2d = ops::conv2d(
        &x.reshape(&[1, 2, 3, 3])?,
        &k.reshape(&[1, 2, 2, 2])?,
        None,
        &Conv2dParams::new(),
    )?;
    p.line(format!(
        "conv2d with weight [1, 2, 2, 2] agrees: {}",
        via_conv2d.data() == y.data()
    ));

    p.cell("6.4.2 multiple output channels: K stacked with K + 1 and K + 2 gives a [3, 2, 2, 2] kernel and three output channels");
    let k3 = Tensor::stack(&[&k, &k.map(|v| v + 1.0), &k.map(|v| v + 2.0)], 0)?;
    p.line(size(k3.shape()));
    p.line(corr2d_multi_in_out(&x, &k3)?);

    p.cell("6.4.3 1x1 convolution: on [3, 3, 3] input with a [2, 3, 1, 1] kernel it is the matrix product K.reshape(2, 3) @ X.reshape(3, 9)");
    let mut rng = seeded_rng(0);
    let xr = Tensor::randn(&[3, 3, 3], &mut rng)?;
    let kr = Tensor::randn(&[2, 3, 1, 1], &mut rng)?;
    let y1 = kr
        .reshape(&[2, 3])?
        .matmul(&xr.reshape(&[3, 9])?)?
        .reshape(&[2, 3, 3])?;
    let y2 = corr2d_multi_in_out(&xr, &kr)?;
    p.line(compare(&y1, &y2)?);
    Ok(())
}

/// §6.5: max and average pooling, padding and stride, channels.
fn sec_6_5(p: &mut Page) -> Result<()> {
    let x = Tensor::arange(9.0)?.reshape(&[3, 3])?;
    let x4 = x.reshape(&[1, 1, 3, 3])?;
    p.cell("6.5.1 max pooling, 2x2 window, stride 1, on X = arange(9).reshape(3, 3)");
    let m = ops::max_pool2d(&x4, &MaxPool2dParams::new(2).stride(1))?.reshape(&[2, 2])?;
    p.line(&m);
    p.note("average pooling, 2x2 window, stride 1");
    let a = ops::avg_pool2d(&x4, &AvgPool2dParams::new(2).stride(1))?.reshape(&[2, 2])?;
    p.line(&a);
    p.line(format!(
        "the book's hand-written pool2d agrees: {}",
        pool2d(&x, (2, 2), true)? == m && pool2d(&x, (2, 2), false)? == a
    ));

    p.cell("6.5.2 padding and stride: X = arange(16).reshape(1, 1, 4, 4)");
    let x16 = Tensor::arange(16.0)?.reshape(&[1, 1, 4, 4])?;
    p.line(&x16);
    p.note("MaxPool2d(3): the stride defaults to the window, so one window fits");
    p.line(ops::max_pool2d(&x16, &MaxPool2dParams::new(3))?);
    p.note("MaxPool2d(3, padding=1, stride=2)");
    let pooled = ops::max_pool2d(&x16, &MaxPool2dParams::new(3).padding(1).stride(2))?;
    p.line(&pooled);
    p.note("MaxPool2d((2, 4), padding=(1, 2), stride=(2, 3))");
    p.line(ops::max_pool2d(
        &x16,
        &MaxPool2dParams::new((2, 4)).padding((1, 2)).stride((2, 3)),
    )?);

    p.cell("6.5.3 multiple channels: X = cat(X, X + 1) along channels; MaxPool2d(3, padding=1, stride=2) pools each channel separately");
    let x2 = Tensor::cat(&[&x16, &x16.map(|v| v + 1.0)], 1)?;
    p.line(ops::max_pool2d(
        &x2,
        &MaxPool2dParams::new(3).padding(1).stride(2),
    )?);
    Ok(())
}

/// The chapter's exercises that have a computed answer.
fn exercises(p: &mut Page) -> Result<()> {
    let mut rng = seeded_rng(1);

    p.cell("exercise: convolution as a matrix product. (a) unfold (im2col) then matmul: [4, 2*3*3] weight @ [2*3*3, 64] columns (one per output pixel), on a [1, 2, 8, 8] input with padding 1 and stride 1, versus conv2d");
    let x = Tensor::randn(&[1, 2, 8, 8], &mut rng)?;
    let w = Tensor::randn(&[4, 2, 3, 3], &mut rng)?;
    let params = Conv2dParams::new().padding(1).stride(1);
    let cols = ops::unfold(&x, &UnfoldParams::new(3).padding(1))?;
    p.line(format!("unfold: {}", size(cols.shape())));
    let l = cols.shape()[2];
    let via_unfold = w
        .reshape(&[4, 18])?
        .matmul(&cols.reshape(&[18, l])?)?
        .reshape(&[1, 4, 8, 8])?;
    p.line(compare(&via_unfold, &ops::conv2d(&x, &w, None, &params)?)?);

    p.note("(b) the explicit Toeplitz (doubly-blocked) matrix T of K = [[0, 1], [2, 3]] on a 3x3 input: corr2d(X, K) = T @ X.flatten()");
    let k = Tensor::from_rows(&[[0.0, 1.0], [2.0, 3.0]])?;
    let t = toeplitz(&k, (3, 3))?;
    p.line(&t);
    let x9 = Tensor::arange(9.0)?.reshape(&[9, 1])?;
    p.line(t.matmul(&x9)?.reshape(&[4])?);
    p.note("and on a random 6x7 image with a random 3x3 kernel, versus conv2d");
    let xr = Tensor::randn(&[6, 7], &mut rng)?;
    let kr = Tensor::randn(&[3, 3], &mut rng)?;
    let via_t = toeplitz(&kr, (6, 7))?
        .matmul(&xr.reshape(&[42, 1])?)?
        .reshape(&[1, 1, 4, 5])?;
    let direct = ops::conv2d(
        &xr.reshape(&[1, 1, 6, 7])?,
        &kr.reshape(&[1, 1, 3, 3])?,
        None,
        &Conv2dParams::new(),
    )?;
    p.line(compare(&via_t, &direct)?);

    p.cell("exercise: the Laplacian kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] is a second derivative: on f(i, j) = i² + j² (6x6) it gives Δf = 2 + 2 = 4 everywhere");
    let f = Tensor::from_vec(
        (0..36)
            .map(|n| ((n / 6) * (n / 6) + (n % 6) * (n % 6)) as f32)
            .collect(),
        &[6, 6],
    )?;
    let lap = Tensor::from_rows(&[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])?;
    p.line(ops::corr2d(&f, &lap)?);
    p.note("on a 6x6 image with a bright 2x2 square: negative on the square, positive just around it, 0 where the image is flat");
    let mut sq = Tensor::zeros(&[6, 6])?;
    for (r, c) in [(2, 2), (2, 3), (3, 2), (3, 3)] {
        sq.data_mut()[r * 6 + c] = 1.0;
    }
    p.line(ops::corr2d(&sq, &lap)?);
    p.note("the box (all-ones) 3x3 kernel is a discrete integral: each output is the sum over its 3x3 window (4 where the window covers the square, less at its edge)");
    p.line(ops::corr2d(&sq, &Tensor::ones(&[3, 3])?)?);

    p.cell("exercise: the smallest kernel for a d-th derivative is d+1 wide, the binomial coefficients with alternating signs; on x³ sampled at x = 0..7");
    let cube = Tensor::from_vec((0..8).map(|i| (i * i * i) as f32).collect(), &[1, 8])?;
    p.line(&cube);
    let meaning = ["3x² + 3x + 1", "6x + 6", "6 = 3!"];
    for d in 1..=3 {
        let coeffs: Vec<f32> = (0..=d)
            .map(|i| {
                let sign = if (d - i) % 2 == 0 { 1.0 } else { -1.0 };
                sign * binomial(d, i)
            })
            .collect();
        let kd = Tensor::from_vec(coeffs, &[1, d + 1])?;
        p.note(&format!(
            "d = {d}: kernel {} → {}",
            kd.data()
                .iter()
                .map(|v| format!("{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            meaning[d - 1]
        ));
        p.line(ops::corr2d(&cube, &kd)?);
    }
    Ok(())
}

/// Two mistakes from learners' notebooks and what convlab says about them.
fn mistakes(p: &mut Page) -> Result<()> {
    p.cell("mistake 1: a 4-D batch [1, 1, 6, 8] given to the chapter's 2-D Conv2D (corr2d). PyTorch fails deep inside with \"The size of tensor a (0) must match the size of tensor b (7)\"; convlab names the problem:");
    let layer = Conv2D {
        weight: Var::param(Tensor::from_rows(&[[1.0, -1.0]])?),
        bias: Var::param(Tensor::zeros(&[1])?),
    };
    let batch = Var::new(edge_image()?.reshape(&[1, 1, 6, 8])?);
    match layer.forward(&batch) {
        Ok(_) => {
            return Err(Error::shape(
                "tour",
                "corr2d accepted a 4-D input, which mistake 1 is about",
            ))
        }
        Err(e) => p.line(format!("convlab: {e}")),
    }

    p.cell("mistake 2: the same lr 3e-2 on an image with one dark column (column 3) and K = [[-1, 1]]: the loss grows ×8.8 per step; the trainer notices and stops");
    let mut x = Tensor::ones(&[6, 8])?;
    for row in x.data_mut().chunks_mut(8) {
        row[3] = 0.0;
    }
    let y = ops::corr2d(&x, &Tensor::from_rows(&[[-1.0, 1.0]])?)?;
    let opts = LearnOptions::new((1, 2))
        .init(Tensor::from_rows(&[[0.3, 0.7]])?)
        .lr(LearningRate::Fixed(3e-2))
        .steps(13);
    let mut log = Vec::new();
    let rep = learn_kernel(&x, &y, &opts, |i, l| {
        log.push(format!("epoch {}, loss {l:.3}", i + 1))
    })?;
    log.iter().for_each(|l| p.line(l));
    if !matches!(rep.outcome, Outcome::Diverged { .. }) {
        return Err(Error::autograd(
            "tour",
            format!("the diverging run was not recognised: {}", rep.outcome),
        ));
    }
    p.line(&rep.outcome);
    let auto = opts.lr(LearningRate::Auto).steps(100);
    let rep = learn_kernel(&x, &y, &auto, |_, _| {})?;
    p.note(&format!(
        "with --lr auto (1/λmax = {:.5}, half the bound 2/λmax): {} steps, loss {:.1} → {:.1e}, kernel close to [-1, 1]",
        rep.lr,
        rep.losses.len(),
        rep.losses[0],
        rep.losses[rep.losses.len() - 1]
    ));
    p.line(&rep.kernel);
    Ok(())
}
