"""Keras (TensorFlow backend, CPU) peer of `autoencoder bench`.

Run from the repository root:
    python benches/peers/keras_bench.py --model baseline --json
    python benches/peers/keras_bench.py --model modified --batch-size 64 --threads 8
    python benches/peers/keras_bench.py --model modified --precision bf16

Trains one fixed batch of real Fashion-MNIST images (Adam lr 1e-3, MSE, train_on_batch)
for 3 warm-up + --steps timed steps, then times inference at batch 256, and prints
one JSON line shaped like the Rust `autoencoder bench` output.
"""
import os
import time

import numpy as np

from common import INFER_BATCH, PARAMS, default_threads, load_images, parse_args, report

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
    args = parse_args(__doc__)
    threads = args.threads or default_threads()

    import tensorflow as tf

    # Must happen before TensorFlow runs any op.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    keras.utils.set_random_seed(42)
    if args.precision == "bf16":
        # bf16 compute with f32 variables, as Keras documents mixed precision.
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
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

    report(args, threads, train_ips, infer_ips)

if __name__ == "__main__":
    main()
