"""Medians and ratios of benches/peers/run.sh's interleaved rounds: a Markdown table, then one
JSON line. Usage: python summarise.py results.jsonl"""
import json
import statistics
import sys


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    med = {}
    for engine in ("ours", "keras", "pytorch"):
        for model in ("baseline", "modified"):
            sel = [r for r in rows if r["engine"] == engine and r["model"] == model]
            if sel:
                med[engine, model] = {
                    "train": statistics.median(r["train_images_per_s"] for r in sel),
                    "infer": statistics.median(r["infer_images_per_s"] for r in sel),
                    "rounds": len(sel),
                }
    ours = [r for r in rows if r["engine"] == "ours"]
    peak = statistics.median(r["peak_gflops"] for r in ours)
    peak1 = statistics.median(r["peak_gflops_1thread"] for r in ours)
    threads, path_name = ours[0]["threads"], ours[0]["kernel_path"]
    print(f"images/s, {threads} threads, medians of {med['ours', 'baseline']['rounds']} interleaved rounds; "
          f"kernels {path_name}; measured FMA peak {peak:.0f} GFLOP/s ({peak1:.0f} on 1 thread)\n")
    print("| | ours | Keras | PyTorch | ours / Keras | ours / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {"threads": threads, "kernel_path": path_name, "peak_gflops": peak, "peak_gflops_1thread": peak1, "rows": []}
    for what, key, batch in (("training", "train", 64), ("inference", "infer", 256)):
        for model in ("baseline", "modified"):
            o, k, t = (med.get((e, model), {}).get(key) for e in ("ours", "keras", "pytorch"))
            rk = o / k if o and k else None
            rt = o / t if o and t else None
            fmt = lambda v: f"{v:,.0f}" if v else "-"
            ratio = lambda v: f"**{v:.2f}x**" if v else "-"
            print(f"| {model} {what}, batch {batch} | {fmt(o)} | {fmt(k)} | {fmt(t)} | {ratio(rk)} | {ratio(rt)} |")
            summary["rows"].append({"model": model, "pass": what, "batch_size": batch, "ours": o, "keras": k,
                                    "pytorch": t, "ours_over_keras": rk, "ours_over_pytorch": rt})
    print()
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
