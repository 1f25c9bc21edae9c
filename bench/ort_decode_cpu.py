"""CPU per base-layer decode under onnxruntime's thread settings: the default pool (a spinning thread per
core) against what the cloud services now pass (one intra-op thread, one inter-op thread, no spinning;
service_common.settings.OnnxRuntimeSettings).

Each setting runs in its own process (onnxruntime reads them when a session opens), decodes the same base
layers with a pause after each (`--gap-ms`, as the analyzer's worker waits on Redis between decodes: a
spinning pool burns CPU in those pauses), and reports the process's CPU time (user + system, all threads:
a spinning pool's burn counts) and wall time per decode. Run under load the wall figure moves; the CPU figure is the one
the setting changes.

    python -m bench.ort_decode_cpu [--decodes 2000] [--gap-ms 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.report import machine_record, write_report

OUT = Path(__file__).parent / "results" / "ort_decode_cpu.json"
SETTINGS = {
    "onnxruntime default (threads per core, spinning)": {},
    "services' setting (intra 1, inter 1, no spinning)": {"FACECODEC_ORT_THREADS": "1",
                                                          "FACECODEC_ORT_INTER_THREADS": "1",
                                                          "FACECODEC_ORT_SPINNING": "0"},
}


def measure(decodes: int, gap_s: float) -> dict:
    """In this process: decode `decodes` base layers (64 distinct ones, in turn), pausing `gap_s` after each;
    CPU per decode, and wall per decode without the pauses."""
    import numpy as np

    from cloud_analyzer.recognition import decode_base_layer
    from facecodec.codec.profiles import codec_by_name

    codec = codec_by_name("scalable")  # the analyzer's default: a learned base layer, decoded by onnxruntime
    rng = np.random.default_rng(0)
    containers = []
    for _ in range(64):
        d = rng.standard_normal(512).astype(np.float32)
        containers.append(codec.encode_base(d / np.linalg.norm(d)).base_only().to_bytes())
    for c in containers:  # sessions open and warm up: not timed
        decode_base_layer(c)
    cpu0, busy = time.process_time(), 0.0
    for i in range(decodes):
        start = time.perf_counter()
        decode_base_layer(containers[i % len(containers)])
        busy += time.perf_counter() - start
        if gap_s:
            time.sleep(gap_s)
    cpu = time.process_time() - cpu0
    return {"decodes": decodes, "gap_ms": gap_s * 1e3, "cpu_ms_per_decode": round(cpu / decodes * 1e3, 3),
            "wall_ms_per_decode": round(busy / decodes * 1e3, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decodes", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, nargs="+", default=[0.0, 0.3, 2.0],
                        help="pauses after each decode, one run per setting each (0: back to back)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.decodes, args.gap_ms[0] / 1e3)))
        return
    results: dict[str, list] = {}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FACECODEC_ORT_")}
    for gap in args.gap_ms:
        for name, env in SETTINGS.items():
            load = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-m", "bench.ort_decode_cpu", "--child", "--decodes",
                                  str(args.decodes), "--gap-ms", str(gap)],
                                 env={**clean, **env}, capture_output=True, text=True, check=True)
            results.setdefault(name, []).append({**json.loads(out.stdout.strip().splitlines()[-1]), "env": env,
                                                 "load_1min_before": round(load, 2)})
    write_report({"benchmark": "ort_decode_cpu", "machine": machine_record(), "results": results}, OUT)


if __name__ == "__main__":
    main()
