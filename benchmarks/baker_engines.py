"""Engine benchmark for the embedded voice: torch port vs the LiteRT reference, same machine, same run.

    .venv/bin/python benchmarks/baker_engines.py [--repeats 5] [--batches 1 2 4 8 16] [--threads 2]

1. Real-time factor (synthesis seconds / audio seconds) per sentence, torch and LiteRT interleaved
   so both see the same machine load; median and spread over --repeats.
2. Throughput (audio seconds per wall second) vs batch size: one engine call per batch of
   mixed-length sentences, best of --repeats with the engines interleaved. torch runs it both as one
   padded batch and item by item (its CPU default); LiteRT cannot batch, so it goes item by item.
3. On a machine with CUDA (run it there: nothing here is CPU-specific), the same for torch on CUDA
   in fp32, fp16 and bf16 up to batch 64, with torch.cuda.synchronize() around every timing, the
   peak GPU memory of each call, and the issue's targets checked (gpu_targets in the JSON).
4. --compile adds each torch engine again with its vocoder under torch.compile(dynamic=True), to
   decide whether the engine should offer it. On 2 CPU cores it did not pay: 40-52 s to compile
   (plus recompiles for new lengths), then the vocoder 0.79x and the acoustic model 1.04x eager
   (RTF 0.112 vs 0.107 whole); CUDA is yet to be measured, so the server offers no compile setting.

Results are printed and saved as JSON under benchmarks/results/ (baker_engines_<device>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Importing the baker package sets OMP_WAIT_POLICY before torch is imported (see its __init__).
from tts_server.engines.baker.litert import SAMPLE_RATE, BakerLiteRTEngine  # noqa: E402
from tts_server.engines.baker.torch_engine import BakerTorchEngine  # noqa: E402
from tts_server.engines.base import Segment  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SENTENCES = (
    "欢迎使用语音合成服务，今天天气很好。",
    "我们正在测试离线中文语音合成的速度和质量，请大家多多指教。",
    "你好。",
    "今天是二零二四年三月五日，气温二十五度。",
    "请在下一个路口向右转，然后直行五百米。",
    "语音合成把文字变成自然流畅的声音。",
    "谢谢大家。",
    "这是一个用于测试批量推理吞吐量的较长句子，包含多个分句，以及一些停顿。",
)


def cuda_peak_mib(engine: object) -> float | None:
    """Peak GPU memory since the last reset, for CUDA engines (None elsewhere)."""
    if getattr(engine, "device", None) != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def reset_cuda_peak(engine: object) -> None:
    if getattr(engine, "device", None) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def gpu_targets(rtf: Sequence[dict], throughput: Sequence[dict]) -> dict[str, dict]:
    """The issue's GPU targets, per CUDA engine: RTF <= 0.01 at batch 1, batch 8 >= 4x batch 1,
    half precision >= 1.5x fp32 (best batch size of each)."""
    speed = {(r["engine"], r["batch"]): r["audio_s_per_s"] for r in throughput}
    best: dict[str, float] = {}
    for (name, _), value in speed.items():
        best[name] = max(best.get(name, 0.0), value)
    out: dict[str, dict] = {}
    for row in rtf:
        name = row["engine"]
        if "cuda" not in name:
            continue
        target: dict = {"rtf_batch1": row["rtf_median"], "rtf_ok": row["rtf_median"] <= 0.01}
        if (name, 1) in speed and (name, 8) in speed:
            ratio = speed[(name, 8)] / speed[(name, 1)]
            target |= {"batch8_over_batch1": round(ratio, 2), "batching_ok": ratio >= 4}
        fp32 = name.replace("fp16", "fp32").replace("bf16", "fp32")
        if fp32 != name and fp32 in best and name in best:
            ratio = best[name] / best[fp32]
            target |= {"over_fp32": round(ratio, 2), "half_ok": ratio >= 1.5}
        out[name] = target
    return out


def timed(engine: object, segments: Sequence[Segment], sync: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, audio seconds) for one engine call."""
    sync()
    start = time.perf_counter()
    waves = engine.synthesize(segments)  # type: ignore[attr-defined]
    sync()
    return time.perf_counter() - start, sum(w.size for w in waves) / SAMPLE_RATE


def rtf_rows(engines: dict[str, tuple[object, Callable[[], None]]], repeats: int) -> list[dict]:
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(repeats):
        for text in SENTENCES:
            for name, (engine, sync) in engines.items():  # interleaved: same load for each
                wall, audio = timed(engine, [Segment(text, "baker")], sync)
                samples[name].append(wall / audio)
    return [
        {
            "engine": name,
            "rtf_median": round(statistics.median(values), 4),
            "rtf_p10": round(sorted(values)[len(values) // 10], 4),
            "rtf_p90": round(sorted(values)[(len(values) * 9) // 10], 4),
            "calls": len(values),
        }
        for name, values in samples.items()
    ]


def throughput_rows(
    engines: dict[str, tuple[object, Callable[[], None]]], batches: Sequence[int], repeats: int
) -> list[dict]:
    """Best of `repeats` per engine and batch size; engines interleaved within each repeat."""
    rows = []
    for size in batches:
        segments = [Segment(SENTENCES[i % len(SENTENCES)], "baker") for i in range(size)]
        walls: dict[str, list[float]] = {name: [] for name in engines}
        peaks: dict[str, float | None] = {}
        audio = 0.0
        for _ in range(repeats):
            for name, (engine, sync) in engines.items():
                reset_cuda_peak(engine)
                wall, audio = timed(engine, segments, sync)
                walls[name].append(wall)
                peaks[name] = cuda_peak_mib(engine)
        for name in engines:
            wall = min(walls[name])
            row = {
                "engine": name,
                "batch": size,
                "audio_s": round(audio, 2),
                "wall_s_best": round(wall, 3),
                "wall_s_all": [round(w, 3) for w in walls[name]],
                "audio_s_per_s": round(audio / wall, 2),
            }
            figure = f"{audio / wall:7.2f} audio s/s ({wall:.2f} s for {audio:.1f} s)"
            if peaks[name] is not None:
                row["peak_gpu_mib"] = peaks[name]
                figure += f", peak {peaks[name]:.0f} MiB"
            rows.append(row)
            print(f"  {name:22s} batch {size:2d}: {figure}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batches", type=int, nargs="+", help="default 1..16, and 1..64 where CUDA is present"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd vocoders")
    args = parser.parse_args()
    import torch

    batches = args.batches or ([1, 2, 4, 8, 16, 32, 64] if torch.cuda.is_available() else [1, 2, 4, 8, 16])
    results: dict = {
        "benchmark": "baker_engines",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_threads": args.threads,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            # The cores may be shared (other jobs): the load average says how much they were.
            "load_average_at_start": os.getloadavg(),
        },
        "sentences": list(SENTENCES),
    }

    def no_sync() -> None:
        return None

    cpu_torch = BakerTorchEngine(device="cpu", threads=args.threads, batch_mode="sequential")
    cpu_padded = BakerTorchEngine(device="cpu", threads=args.threads, batch_mode="padded")
    litert = BakerLiteRTEngine(threads=args.threads)
    for engine in (cpu_torch, cpu_padded, litert):
        engine.warm_up()
    engines: dict[str, tuple[object, Callable[[], None]]] = {
        "torch-cpu-fp32": (cpu_torch, no_sync),
        "litert-cpu-int8": (litert, no_sync),
    }
    padded_cpu = {"torch-cpu-fp32-padded": (cpu_padded, no_sync)}
    if torch.cuda.is_available():
        for precision in ("fp32", "fp16", "bf16"):
            gpu = BakerTorchEngine(device="cuda", precision=precision, batch_mode="padded")
            gpu.warm_up()
            engines[f"torch-cuda-{precision}"] = (gpu, torch.cuda.synchronize)
    else:
        results["cuda"] = "skipped: no CUDA device on this machine"
    if args.compile:
        for name, (engine, sync) in list(engines.items()):
            if isinstance(engine, BakerTorchEngine):
                compiled = BakerTorchEngine(
                    device=engine.device, precision=engine.precision, threads=args.threads
                )
                # The compiled module forwards attribute reads (hop) to the original.
                compiled.vocoder = torch.compile(compiled.vocoder, dynamic=True)
                compiled.warm_up()
                engines[f"{name}-compiled"] = (compiled, sync)

    print("RTF per sentence (interleaved):")
    results["rtf"] = rtf_rows(engines, args.repeats)
    for row in results["rtf"]:
        spread = f"p10 {row['rtf_p10']:.4f}  p90 {row['rtf_p90']:.4f}"
        print(f"  {row['engine']:22s} median {row['rtf_median']:.4f}  {spread}")
    print("Throughput vs batch size:")
    # One engine call per batch: LiteRT and torch's CPU default loop over the items inside it,
    # "padded" engines run the batch as one padded tensor per stage.
    results["throughput"] = throughput_rows({**engines, **padded_cpu}, batches, args.repeats)
    if torch.cuda.is_available():
        results["gpu_targets"] = gpu_targets(results["rtf"], results["throughput"])
        print("GPU targets:", json.dumps(results["gpu_targets"], indent=1))
    results["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = RESULTS / f"baker_engines_{device}.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
