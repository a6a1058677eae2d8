"""Medians and ratios of benches/peers/run.sh's interleaved rounds: a Markdown table per
precision (bf16's with ours against Keras's f32 as well), with the spread of each round's own
ratio (ours against the peer run just after it) beside the medians', then one JSON line.
Usage: python summarise.py results.jsonl"""
import json
import statistics
import sys

ENGINES = ("ours", "keras", "pytorch")
MODELS = ("baseline", "modified")


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    for r in rows:
        r.setdefault("precision", "f32")
    med = {}
    for r in rows:
        med.setdefault((r["engine"], r["precision"], r["model"]), []).append(r)
    med = {key: {"train": statistics.median(r["train_images_per_s"] for r in sel),
                 "infer": statistics.median(r["infer_images_per_s"] for r in sel),
                 "rounds": len(sel)} for key, sel in med.items()}
    by_round = {(r["engine"], r["precision"], r["model"], r["round"]): r for r in rows}
    ours = [r for r in rows if r["engine"] == "ours"]
    peak = statistics.median(r["peak_gflops"] for r in ours)
    peak1 = statistics.median(r["peak_gflops_1thread"] for r in ours)
    bf16_peaks = [r["bf16_peak_gflops"] for r in ours if r.get("bf16_peak_gflops")]
    threads, path_name = ours[0]["threads"], ours[0]["kernel_path"]
    bf16_kernels = next((r["bf16_kernels"] for r in ours if r.get("bf16_kernels")), None)
    rounds = max(m["rounds"] for m in med.values())
    bf16_peak = f", VDPBF16PS peak {statistics.median(bf16_peaks):.0f}" if bf16_peaks else ""
    print(f"images/s, {threads} threads, medians of {rounds} interleaved rounds; kernels {path_name}"
          f"{f', bf16 {bf16_kernels}' if bf16_kernels else ''}; measured FMA peak {peak:.0f} GFLOP/s "
          f"({peak1:.0f} on 1 thread){bf16_peak}\n")
    summary = {"threads": threads, "kernel_path": path_name, "bf16_kernels": bf16_kernels, "peak_gflops": peak,
               "peak_gflops_1thread": peak1, "bf16_peak_gflops": statistics.median(bf16_peaks) if bf16_peaks else None,
               "rows": []}
    fmt = lambda v: f"{v:,.0f}" if v else "-"
    ratio = lambda v: f"**{v:.2f}x**" if v else "-"
    div = lambda a, b: a / b if a and b else None
    for precision in ("f32", "bf16"):
        if not any(k[1] == precision for k in med):
            continue
        cross = precision == "bf16"
        head = f"| {precision} | ours | Keras | PyTorch | ours / Keras | ours / PyTorch | per round, Keras / PyTorch |"
        print(head + (" ours / Keras f32 |" if cross else ""))
        print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if cross else ""))
        for what, key, batch in (("training", "train", 64), ("inference", "infer", 256)):
            for model in MODELS:
                o, k, t = (med.get((e, precision, model), {}).get(key) for e in ENGINES)
                k32 = med.get(("keras", "f32", model), {}).get(key)
                per_round = {peer: round_ratios(by_round, peer, precision, model, key) for peer in ENGINES[1:]}
                line = (f"| {model} {what}, batch {batch} | {fmt(o)} | {fmt(k)} | {fmt(t)} | {ratio(div(o, k))} | "
                        f"{ratio(div(o, t))} | {spread(per_round['keras'])} / {spread(per_round['pytorch'])} |")
                print(line + (f" {ratio(div(o, k32))} |" if cross else ""))
                summary["rows"].append({"model": model, "pass": what, "precision": precision, "batch_size": batch,
                                        "ours": o, "keras": k, "pytorch": t, "ours_over_keras": div(o, k),
                                        "ours_over_pytorch": div(o, t), "ours_over_keras_f32": div(o, k32),
                                        "ours_over_keras_rounds": per_round["keras"],
                                        "ours_over_pytorch_rounds": per_round["pytorch"]})
        print()
    print(json.dumps(summary))


def round_ratios(by_round, peer, precision, model, key):
    """Each round's ours / peer for one row, in round order (rounds where both ran)."""
    rounds = sorted(r for (e, p, m, r) in by_round if (e, p, m) == ("ours", precision, model))
    pairs = [(by_round[("ours", precision, model, r)], by_round.get((peer, precision, model, r))) for r in rounds]
    return [o[f"{key}_images_per_s"] / q[f"{key}_images_per_s"] for o, q in pairs if q and q[f"{key}_images_per_s"]]


def spread(ratios):
    """The lowest and highest of a row's per-round ratios, as 1.41-1.52x."""
    return f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else "-"


if __name__ == "__main__":
    main(sys.argv[1])
