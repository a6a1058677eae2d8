"""PyTorch (CPU) peer of `autoencoder bench`.

Run from the repository root:
    python benches/peers/torch_bench.py --model baseline --json
    python benches/peers/torch_bench.py --model modified --batch-size 64 --threads 8

Trains one fixed batch of real Fashion-MNIST images (Adam lr 1e-3, MSE, manual
forward/backward/step loop) for 3 warm-up + --steps timed steps, then times inference
at batch 256, and prints one JSON line shaped like the Rust `autoencoder bench` output.
The models are the Keras ones of keras_bench.py, in NCHW.
"""
import time

from common import INFER_BATCH, PARAMS, default_threads, load_images, parse_args, report


def build(nn, kind):
    # Flatten/Unflatten run over NCHW here and NHWC in Keras, so the Dense weights see the
    # features in another order: irrelevant for speed (same shapes, same FLOPs).
    if kind == "baseline":
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),  # stride-1 'same'
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(6272, 128),  # linear latent
            nn.Linear(128, 6272), nn.ReLU(),
            nn.Unflatten(1, (32, 14, 14)),
            nn.Upsample(scale_factor=2, mode="nearest"),  # = UpSampling2D(2)
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid(),
        )
    # Keras 'same' with stride 2 on even sizes pads one extra row/column at the bottom/right
    # only: ZeroPad2d((0, 1, 0, 1)) is F.pad(x, (0, 1, 0, 1)), then an unpadded conv.
    return nn.Sequential(
        nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 32, 3, stride=2), nn.ReLU(),  # 28 -> 14
        nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),  # 14 -> 7
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6272, 128),  # linear latent
        nn.Linear(128, 6272), nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        # k3 s2 padding=1 output_padding=1 gives in*2, the Keras 'same' shape. PyTorch crops
        # the first row/column of the full (2*in+1) output where Keras crops the last one:
        # the values shift, the FLOPs are the same, which is what a speed benchmark needs.
        nn.ConvTranspose2d(128, 128, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 7 -> 14
        nn.ConvTranspose2d(128, 64, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # 14 -> 28
        nn.ConvTranspose2d(64, 1, 3, padding=1), nn.Sigmoid(),
    )


def main():
    args = parse_args(__doc__)
    threads = args.threads or default_threads()

    import torch
    import torch.nn.functional as F
    from torch import nn

    # set_num_interop_threads must come before any parallel work.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    torch.manual_seed(42)

    pixels = torch.from_numpy(load_images(args.data_dir, max(args.batch_size, INFER_BATCH))).unsqueeze(1)  # NCHW
    model = build(nn, args.model)
    params = sum(p.numel() for p in model.parameters())
    assert params == PARAMS[args.model], f"{args.model}: {params} parameters, expected {PARAMS[args.model]}"
    out_shape = tuple(model(pixels[:1]).shape)
    assert out_shape == (1, 1, 28, 28), f"{args.model}: output shape {out_shape}, expected (1, 1, 28, 28)"
    if not args.json:
        print(f"torch {torch.__version__}: {args.model}, {params:,} parameters")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    batch = pixels[: args.batch_size].contiguous()

    # bf16: autocast runs the convolutions and matmuls in bf16, the weights and Adam in f32.
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = F.mse_loss(model(batch).float(), batch)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(3):
        train_step()
    t = time.perf_counter()
    for _ in range(args.steps):
        train_step()  # CPU ops run synchronously: each step has finished on return
    train_ips = args.steps * args.batch_size / (time.perf_counter() - t)

    model.eval()
    infer = pixels[:INFER_BATCH].contiguous()
    reps = max(2, -(-args.steps // 4))  # max(2, ceil(steps / 4)), as in the Rust bench
    with torch.inference_mode(), autocast():
        model(infer)
        t = time.perf_counter()
        for _ in range(reps):
            model(infer)
        infer_ips = reps * INFER_BATCH / (time.perf_counter() - t)

    # Training costs about three forward passes: forward, input gradient, weight gradient.
    report(args, threads, train_ips, infer_ips)

if __name__ == "__main__":
    main()
