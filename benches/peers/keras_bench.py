"""Keras (TensorFlow backend, CPU) peer of `autoencoder bench`.

Run from the repository root:
    python benches/peers/keras_bench.py --model baseline --json
    python benches/peers/keras_bench.py --model modified --batch-size 64 --threads 8

Trains one fixed batch of real Fashion-MNIST images (Adam lr 1e-3, MSE, train_on_batch)
for 3 warm-up + --steps timed steps, then times inference at batch 256, and prints
one JSON line shaped like the Rust `autoencoder bench` output.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

INFER_BATCH = 256
# Forward FLOPs per image = 2 x multiply-adds (about 47.5e6 and 56.6e6), as in the Rust models.
FORWARD_FLOPS = {"baseline": 2 * 23_733_248, "modified": 2 * 28_305_536}
PARAMS = {"baseline": 1_640_385, "modified": 1_926_657}


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["baseline", "modified"], default="modified")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps (after 3 warm-up steps)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--data-dir", default=os.environ.get("FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    for name in ("batch_size", "steps", "threads"):
        v = getattr(a, name)
        if v is not None and v < 1:
            p.error(f"invalid --{name.replace('_', '-')}: expected at least 1, found {v}")
    return a


def load_images(data_dir, count):
    """First `count` training images as float32 (count, 28, 28) in [0, 1]."""
    path = os.path.join(data_dir, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        magic, n, rows, cols = np.frombuffer(f.read(16), dtype=">u4")
        if magic != 2051 or (rows, cols) != (28, 28):
            raise SystemExit(f"{path}: not an IDX image file of 28x28 images")
        if count > n:
            raise SystemExit(f"{path}: holds {n} images, need {count}")
        px = np.frombuffer(f.read(count * 784), dtype=np.uint8)
    return (px.astype(np.float32) / 255.0).reshape(count, 28, 28)


def build(keras, kind):
    L = keras.layers
    if kind == "baseline":
        layers = [
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(128),  # linear latent
            L.Dense(6272, activation="relu"),
            L.Reshape((14, 14, 32)),
            L.UpSampling2D(2),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(32, 3, padding="same", activation="relu"),
            L.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ]
    else:
        layers = [
            L.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            L.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
            L.Conv2D(128, 3, padding="same", activation="relu"),
            L.Flatten(),
            L.Dense(128),  # linear latent
            L.Dense(6272, activation="relu"),
            L.Reshape((7, 7, 128)),
            L.Conv2DTranspose(128, 3, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu"),
            L.Conv2DTranspose(1, 3, padding="same", activation="sigmoid"),
        ]
    return keras.Sequential([keras.Input((28, 28, 1))] + layers, name=kind)


def main():
    args = parse_args()
    threads = args.threads or default_threads()

    import tensorflow as tf

    # Must happen before TensorFlow runs any op.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(42)
    pixels = load_images(args.data_dir, max(args.batch_size, INFER_BATCH))[..., None]  # NHWC
    model = build(keras, args.model)
    params = model.count_params()
    assert params == PARAMS[args.model], f"{args.model}: {params} parameters, expected {PARAMS[args.model]}"
    if not args.json:
        print(f"keras {keras.__version__}, tensorflow {tf.__version__}: {args.model}, {params:,} parameters")
    # jit_compile is left at Keras' default ("auto": XLA when the model supports it), as users get it.
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    if not args.json:
        print(f"jit_compile: {model.jit_compile}")

    batch = np.ascontiguousarray(pixels[: args.batch_size])
    for _ in range(3):
        model.train_on_batch(batch, batch)
    t = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(batch, batch)  # returns the loss, so each step has finished
    train_ips = args.steps * args.batch_size / (time.perf_counter() - t)

    infer = np.ascontiguousarray(pixels[:INFER_BATCH])
    model.predict_on_batch(infer)
    reps = max(2, -(-args.steps // 4))  # max(2, ceil(steps / 4)), as in the Rust bench
    t = time.perf_counter()
    for _ in range(reps):
        model.predict_on_batch(infer)
    infer_ips = reps * INFER_BATCH / (time.perf_counter() - t)

    # Training costs about three forward passes: forward, input gradient, weight gradient.
    gflops_train = train_ips * 3 * FORWARD_FLOPS[args.model] / 1e9
    if not args.json:
        print(
            f"{args.model}: batch {args.batch_size}, {threads} threads, Fashion-MNIST: training {train_ips:.0f} "
            f"images/s ({gflops_train:.1f} GFLOP/s), inference (batch {INFER_BATCH}) {infer_ips:.0f} images/s"
        )
    print(json.dumps({"model": args.model, "batch_size": args.batch_size, "threads": threads,
                      "train_images_per_s": train_ips, "infer_images_per_s": infer_ips,
                      "gflops_train": gflops_train}))


if __name__ == "__main__":
    main()
