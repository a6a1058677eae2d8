"""What the peer benchmarks share: flags, the Fashion-MNIST images, the models' sizes, and the
report in the JSON shape of the Rust `autoencoder bench`."""
import argparse
import gzip
import json
import os

import numpy as np

INFER_BATCH = 256
# Forward FLOPs per image = 2 x multiply-adds (about 47.5e6 and 56.6e6), as in the Rust models.
FORWARD_FLOPS = {"baseline": 2 * 23_733_248, "modified": 2 * 28_305_536}
PARAMS = {"baseline": 1_640_385, "modified": 1_926_657}


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_args(doc):
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["baseline", "modified"], default="modified")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: all cores)")
    p.add_argument("--steps", type=int, default=30, help="timed training steps (after 3 warm-up steps)")
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                   help="bf16: Keras's mixed_bfloat16 policy, PyTorch's bf16 autocast")
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



def report(args, threads, train_ips, infer_ips):
    """Prints the human line (unless --json) and the JSON line."""
    # Training costs about three forward passes: forward, input gradient, weight gradient.
    gflops_train = train_ips * 3 * FORWARD_FLOPS[args.model] / 1e9
    if not args.json:
        print(
            f"{args.model}: batch {args.batch_size}, {threads} threads, {args.precision}, Fashion-MNIST: training {train_ips:.0f} "
            f"images/s ({gflops_train:.1f} GFLOP/s), inference (batch {INFER_BATCH}) {infer_ips:.0f} images/s"
        )
    print(json.dumps({"model": args.model, "batch_size": args.batch_size, "threads": threads,
                      "train_images_per_s": train_ips, "infer_images_per_s": infer_ips,
                      "gflops_train": gflops_train, "precision": args.precision}))
