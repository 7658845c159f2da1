#!/usr/bin/env python3
"""The peers: PyTorch's kernels timed on the chapters' benchmark shapes, on this GPU, now.

The chapter executables report every kernel as a ratio to a ceiling measured in the same run
(a device-to-device copy, a cuBLAS GEMM). This script measures the same ceilings and the
field's kernels the same way (CUDA events, median, a cold L2 before every timed run), so a
solution can be compared with its peers on one machine in one sitting:

  chapter 03  torch.softmax                         rows x cols = 2^27 fp32 / 2^28 fp16, bf16
  chapter 04  scale + masked_fill + softmax         [B * 12, N, N] fp16, and a decode row [B * 12, 1, 64k]
              (eager: the four-kernel chain; compiled: torch.compile's fused kernel, if it builds)
  chapter 07  scaled_dot_product_attention          bf16, B * N = 16k tokens, hidden 2048;
              FlashAttention-2 and cuDNN backends
  chapter 08  scaled_dot_product_attention, n_q = 1 fp16, heads 32, kv heads 8, d = 128 (GQA)

Needs PyTorch with CUDA; it is not part of the build or of CI.

  python3 tools/peers.py [--chapters 03,04,07,08] [--repeats 20]

Prints one table per chapter; the same units as the chapter's tour (GB/s counting the bytes
the chapter counts, TFLOP/s as 4 N^2 d per head, half for causal).
"""
import argparse
import math
import sys


def die(message):
    print(f"peers.py: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import torch
    import torch.nn.attention
    import torch.nn.functional as F
except ImportError:
    die("needs PyTorch (import torch failed)")


class Timer:
    """Median time of fn() in ms: warm-up runs, then each timed run after an L2 flush."""

    def __init__(self, repeats):
        self.repeats = repeats
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        self.flush = torch.empty(2 * l2 // 4 + 1, dtype=torch.float32, device="cuda")

    def __call__(self, fn, warmup=3):
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            self.flush.fill_(1.0)  # evicts fn's inputs: no credit for L2 bandwidth
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        times.sort()
        return times[len(times) // 2]


def copy_gbps(timer):
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB, as ceilings.hpp
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / ms / 1e6


def gemm_bf16_tflops(timer, n=8192):
    a = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(n, n, dtype=torch.bfloat16, device="cuda")
    ms = timer(lambda: a @ b)
    return 2 * n**3 / ms / 1e9


def table(header, rows):
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print()


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def chapter03(timer, copy):
    print("## Chapter 03: torch.softmax over rows (one read + one write counted)\n")
    rows = []
    for name, dtype in DTYPES.items():
        elements = 1 << (27 if dtype == torch.float32 else 28)
        for cols in (1024, 4096, 16384, 32768, 262144):
            x = torch.randn(elements // cols, cols, dtype=dtype, device="cuda")
            ms = timer(lambda: torch.softmax(x, dim=-1))
            gbps = 2 * x.numel() * x.element_size() / ms / 1e6
            rows.append([name, cols, f"{ms * 1e3:.1f}", f"{gbps:.0f}", f"{100 * gbps / copy:.0f}%"])
            del x
    table(["dtype", "cols", "us", "GB/s", "% of copy"], rows)


def chapter04(timer, copy, compile_too):
    print("## Chapter 04: scale + mask + softmax, fp16 (GB/s counts what the fused kernel must move)\n")
    heads, elements = 12, 1 << 27

    def masked(s, keep, scale):  # keep broadcasts over s: [n_q, n_k] or [B, 1, 1, n_k]
        return torch.softmax((s * scale).masked_fill(~keep, float("-inf")), dim=-1)

    compiled = None
    if compile_too:
        try:
            compiled = torch.compile(masked, dynamic=False)
        except Exception as error:  # no compiler on this machine: report eager only
            print(f"(torch.compile unavailable: {error})\n")

    shapes = []
    for n in (512, 1024, 4096):
        b = max(1, round(elements / (heads * n * n)))
        shapes += [(b, n, n, False, False), (b, n, n, True, False)]
    b = max(1, round(elements / (heads * 65536)))
    shapes += [(b, 1, 65536, False, False), (b, 1, 65536, False, True)]
    rows = []
    generator = torch.Generator().manual_seed(4)
    for b, n_q, n_k, causal, padding in shapes:
        s = torch.randn(b, heads, n_q, n_k, dtype=torch.float16, device="cuda")
        # Bottom-right causal alignment, as chapter 04: query i sees keys j <= i + n_k - n_q.
        keep = torch.ones(n_q, n_k, dtype=torch.bool, device="cuda")
        keep = keep.tril(n_k - n_q) if causal else keep
        visible = b * heads * keep.sum().item()
        if padding:  # per-sequence key lengths in [1, n_k], as the tour draws them
            lengths = torch.randint(1, n_k + 1, (b,), generator=generator).cuda()
            keep = torch.arange(n_k, device="cuda") < lengths.view(b, 1, 1, 1)
            visible = int(lengths.sum().item()) * heads * n_q
        must_move = (visible + s.numel()) * 2  # the visible scores read, every output written
        scale = 1 / math.sqrt(64)
        cells = [f"[{b}*{heads}, {n_q}, {n_k}]", "padding" if padding else "causal" if causal else "none"]
        for fn in (masked, compiled):
            if fn is None:
                cells += ["-", "-"]
                continue
            try:
                ms = timer(lambda: fn(s, keep, scale))
                gbps = must_move / ms / 1e6
                cells += [f"{ms * 1e3:.0f} us", f"{gbps:.0f} ({100 * gbps / copy:.0f}%)"]
            except Exception as error:
                print(f"({cells[0]} {cells[1]}: {type(error).__name__}: {str(error)[:80]})")
                cells += ["failed", "-"]
        rows.append(cells)
        del s, keep
    table(["shape", "mask", "eager", "eager GB/s", "compiled", "compiled GB/s"], rows)


def each_backend(timer, backends, attention, cell):
    """One table cell per SDPA backend: cell(ms) of attention() forced onto it, or n/a where the
    backend refuses the inputs."""
    cells = []
    for backend in backends.values():
        try:
            with torch.nn.attention.sdpa_kernel(backend):
                cells.append(cell(timer(attention)))
        except RuntimeError:
            cells.append("n/a")
    return cells


def chapter07(timer, gemm):
    print(f"## Chapter 07: scaled_dot_product_attention, bf16, TFLOP/s (% of the bf16 GEMM, {gemm:.0f})\n")
    backends = {"flash (FA2)": torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                "cuDNN": torch.nn.attention.SDPBackend.CUDNN_ATTENTION}
    rows = []
    for d in (64, 128):
        for n in (512, 1024, 4096, 16384):
            heads, b = 2048 // d, max(1, 16384 // n)
            q, k, v = (torch.randn(b, heads, n, d, dtype=torch.bfloat16, device="cuda") for _ in range(3))
            for causal in (False, True):
                flops = 4 * b * heads * n * n * d / (2 if causal else 1)
                cells = each_backend(timer, backends, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                                     lambda ms: f"{flops / ms / 1e9:.0f} ({100 * flops / ms / 1e9 / gemm:.0f}%)")
                rows.append([d, n, "yes" if causal else "no", *cells])
            del q, k, v
    table(["d", "N", "causal", *backends], rows)


def chapter08(timer, copy):
    print("## Chapter 08: decode, scaled_dot_product_attention with n_q = 1, fp16, heads 32, kv heads 8, d = 128\n"
          "(each backend that takes grouped K/V as they are; GB/s counts the K and V bytes)\n")
    heads, kv_heads, d = 32, 8, 128
    backends = {"flash (FA2)": torch.nn.attention.SDPBackend.FLASH_ATTENTION,
                "efficient": torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION,
                "cuDNN": torch.nn.attention.SDPBackend.CUDNN_ATTENTION}
    rows = []
    for batch in (1, 8, 64):
        for length in (1024, 4096, 16384, 32768, 131072):
            cache_bytes = 2 * batch * kv_heads * length * d * 2  # K and V
            if cache_bytes > 0.4 * torch.cuda.get_device_properties(0).total_memory:
                continue
            q = torch.randn(batch, heads, 1, d, dtype=torch.float16, device="cuda")
            k, v = (torch.randn(batch, kv_heads, length, d, dtype=torch.float16, device="cuda") for _ in range(2))
            cells = each_backend(timer, backends, lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                                 lambda ms: f"{ms * 1e3:.1f} us, {100 * cache_bytes / ms / 1e6 / copy:.0f}%")
            rows.append([batch, length, f"{cache_bytes / 2**20:.0f} MiB", *cells])
            del q, k, v
    table(["batch", "length", "K + V", *backends], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", default="03,04,07,08", help="comma-separated: 03, 04, 07, 08")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per kernel (median reported)")
    parser.add_argument("--no-compile", action="store_true", help="chapter 04: skip torch.compile")
    args = parser.parse_args()
    chapters = set(args.chapters.split(","))
    if not chapters <= {"03", "04", "07", "08"}:
        die(f"--chapters takes 03, 04, 07 and 08, not {args.chapters}")
    if not 1 <= args.repeats <= 1000:
        die("--repeats must be in [1, 1000]")
    if not torch.cuda.is_available():
        die("no CUDA GPU visible to PyTorch")

    props = torch.cuda.get_device_properties(0)
    print(f"# Peers on {props.name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs), "
          f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}\n")
    timer = Timer(args.repeats)
    copy = copy_gbps(timer)
    print(f"device-to-device copy: {copy:.0f} GB/s (read + written)")
    gemm = gemm_bf16_tflops(timer) if "07" in chapters else 0.0
    if gemm:
        print(f"bf16 GEMM 8192^3: {gemm:.0f} TFLOP/s")
    print()
    if "03" in chapters:
        chapter03(timer, copy)
    if "04" in chapters:
        chapter04(timer, copy, not args.no_compile)
    if "07" in chapters:
        chapter07(timer, gemm)
    if "08" in chapters:
        chapter08(timer, copy)


if __name__ == "__main__":
    main()
