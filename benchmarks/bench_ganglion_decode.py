"""Ganglion decode speed: a full night of notifications through the vectorised decode_batch.

Run: ``python benchmarks/bench_ganglion_decode.py [--hours 8.06] [--firmware 2] [--chunk 0]``.

Builds 2.9 M 20-byte notifications (8.06 h at 100 packets/s: firmware 2 with the
accelerometer on, 18-bit deltas, a packet 0 at the start) with the public encoders, then times
:meth:`~crampsense.devices.ganglion.GanglionProtocol.decode_batch` over all of them (or in
chunks of ``--chunk`` notifications, as replay calls it per column batch), and checks the
decoded µV against what the encoder says the decoder must rebuild. Prints notifications/s and
the total time; the target is under 10 s for 2.9 M.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from crampsense.devices import ganglion as gg
from firmware_sims import ganglion as gs

HOST0_NS = 1_736_980_200 * 10**9


def build(n_packets: int, firmware: int, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 2 * n_packets
    # EMG-like counts: a random walk of ±30 µV steps (fits 18-bit deltas)
    steps = rng.integers(-16_000, 16_000, size=(4, n + 1), dtype=np.int64)
    counts = np.cumsum(steps, axis=1)
    aux = rng.integers(-128, 128, size=n_packets)
    if firmware == 2:
        fields, rebuilt = gs.fw2_delta_fields(counts[:, 1:], counts[:, 0])
        ids = np.arange(n_packets) % 100 + 1
        pkts = [gs.encode_raw_packet(counts[:, 0])]
        pkts += gs.encode_sample_packets(ids, fields, firmware=2, aux=aux)
        want = np.concatenate([counts[:, :1], rebuilt], axis=1)
    else:
        fields, rebuilt = gs.fw3_absolute_fields(counts[:, 1:], 18)
        ids = np.arange(n_packets) % 100
        pkts = gs.encode_sample_packets(ids, fields, firmware=3, aux=aux)
        want = rebuilt
    return pkts, want


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=8.06)
    parser.add_argument("--firmware", type=int, default=2, choices=(2, 3))
    parser.add_argument("--chunk", type=int, default=0, help="notifications per call (0: all)")
    args = parser.parse_args()
    n_packets = round(args.hours * 3600 * gg.PACKETS_PER_S)
    t0 = time.perf_counter()
    pkts, want = build(n_packets, args.firmware)
    build_s = time.perf_counter() - t0
    host = HOST0_NS + np.arange(len(pkts), dtype=np.int64) * 10**7
    proto = gg.GanglionProtocol(firmware=args.firmware)
    chunk = args.chunk or len(pkts)
    t0 = time.perf_counter()
    values = []
    for a in range(0, len(pkts), chunk):
        batches = proto.decode_batch(gg.RECEIVE_UUID, pkts[a : a + chunk], host[a : a + chunk])
        assert batches is not None
        values.append(next(b for b in batches if b.stream == "emg").values)
    decode_s = time.perf_counter() - t0
    got = np.concatenate(values, axis=1)
    exact = bool(np.array_equal(got, (want * gg.UV_PER_COUNT).astype(np.float32)))
    print(f"firmware {args.firmware}: {len(pkts):,} notifications ({args.hours:g} h), "
          f"built in {build_s:.1f} s")
    print(f"decode_batch: {decode_s:.2f} s total, {len(pkts) / decode_s:,.0f} notifications/s, "
          f"chunk {chunk:,}, values exact: {exact}")


if __name__ == "__main__":
    main()
