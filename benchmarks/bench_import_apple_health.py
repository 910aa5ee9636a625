"""Speed and memory of ``crampsense import apple-health`` on a 1 M-record export.zip, next to
``xml.etree.ElementTree.parse`` of the same XML.

Run: ``python benchmarks/bench_import_apple_health.py [--records 1000000] [--repeat 3]``

1. Builds (once, cached in ``--dir``) an ``export.zip`` shaped like the Health app's: a
   localised ``apple_health_export/Exportieren.xml`` with the iOS internal DTD, a clinical
   ``export_cda.xml`` beside it, and ``--records`` top-level elements in the mix of a real
   export (heart rate about half, steps, active and basal energy, distance, dietary records
   from two apps, sleep stages from watch and phone, workouts with statistics, metadata
   children), three sources overlapping.
2. Runs ``python -m crampsense import apple-health export.zip --json`` in a fresh home as a
   child process ``--repeat`` times: wall time (start-up included) and the child's peak RSS
   (``os.wait4``). Targets: < 30 s and < 200 MB.
3. Runs ``xml.etree.ElementTree.parse`` on the same XML (extracted once to a temporary file, the
   way a tree parser needs it; DTD removed, since it is what breaks parsers) in a child, timing
   the parse alone and its peak RSS.

Other work may share the machine: read the best as capability, the median as expectation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

WALL_TARGET_S = 30.0
RSS_TARGET_MB = 200.0

DTD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 14 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
]>
<HealthData locale="de_DE">
 <ExportDate value="2024-08-08 09:00:00 +0200"/>
 <Me HKCharacteristicTypeIdentifierDateOfBirth="1958-04-02"/>
"""
DEVICE = ("&lt;&lt;HKDevice: 0x283c54d20&gt;, name:Apple Watch, manufacturer:Apple Inc., "
          "model:Watch, hardware:Watch6,2, software:10.5&gt;")


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S +0200", time.gmtime(t + 7200))


def build_export(path: Path, records: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    t = 1_640_995_200.0  # 2022-01-01
    step_s = 3 * 365 * 86400 / records
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        z.writestr("apple_health_export/export_cda.xml", "<ClinicalDocument/>\n" * 100)
        with z.open("apple_health_export/Exportieren.xml", "w", force_zip64=True) as fh:
            buf = [DTD]
            for _ in range(records):
                t += step_s
                a, b = _stamp(t), _stamp(t + 60)
                r = rng.random()
                src = rng.choice(("Apple Watch", "iPhone", "Withings"))
                if r < 0.5:
                    buf.append(
                        f' <Record type="HKQuantityTypeIdentifierHeartRate" sourceName="{src}" '
                        f'sourceVersion="10.5" device="{DEVICE}" unit="count/min" '
                        f'creationDate="{b}" startDate="{a}" endDate="{a}" '
                        f'value="{rng.randint(50, 120)}">\n'
                        '  <MetadataEntry key="HKMetadataKeyHeartRateMotionContext" value="0"/>\n'
                        " </Record>\n")
                elif r < 0.7:
                    buf.append(
                        f' <Record type="HKQuantityTypeIdentifierStepCount" sourceName="{src}" '
                        f'sourceVersion="17.5" unit="count" creationDate="{b}" startDate="{a}" '
                        f'endDate="{b}" value="{rng.randint(5, 900)}"/>\n')
                elif r < 0.8:
                    kind = rng.choice(("ActiveEnergyBurned", "BasalEnergyBurned"))
                    buf.append(
                        f' <Record type="HKQuantityTypeIdentifier{kind}" sourceName="{src}" '
                        f'unit="kJ" creationDate="{b}" startDate="{a}" endDate="{b}" '
                        f'value="{rng.uniform(0.1, 40):.3f}"/>\n')
                elif r < 0.88:
                    buf.append(
                        ' <Record type="HKQuantityTypeIdentifierDistanceWalkingRunning" '
                        f'sourceName="{src}" unit="km" startDate="{a}" endDate="{b}" '
                        f'value="{rng.uniform(0.001, 0.5):.4f}"/>\n')
                elif r < 0.95:
                    kind, unit, value = rng.choice((
                        ("DietaryWater", "mL", "250"), ("DietaryWater", "fl_oz_us", "8"),
                        ("DietaryMagnesium", "mg", "120"), ("DietaryPotassium", "g", "0.4"),
                        ("DietaryCaffeine", "mg", "95"), ("DietarySodium", "mcg", "300000"),
                    ))
                    app = rng.choice(("MyFitnessPal", "WaterMinder"))
                    buf.append(
                        f' <Record type="HKQuantityTypeIdentifier{kind}" sourceName="{app}" '
                        f'unit="{unit}" startDate="{a}" endDate="{a}" value="{value}"/>\n')
                elif r < 0.99:
                    cat = rng.choice(("InBed", "AsleepCore", "AsleepDeep", "AsleepREM", "Awake"))
                    buf.append(
                        ' <Record type="HKCategoryTypeIdentifierSleepAnalysis" '
                        f'sourceName="{src}" startDate="{a}" endDate="{_stamp(t + 1800)}" '
                        f'value="HKCategoryValueSleepAnalysis{cat}"/>\n')
                else:
                    buf.append(
                        ' <Workout workoutActivityType="HKWorkoutActivityTypeRunning" '
                        f'duration="{rng.uniform(10, 90):.2f}" durationUnit="min" '
                        f'sourceName="{src}" startDate="{a}" endDate="{b}">\n'
                        '  <WorkoutStatistics type="HKQuantityTypeIdentifierDistanceWalkingRunning"'
                        f' startDate="{a}" endDate="{b}" sum="{rng.uniform(1, 15):.2f}" '
                        'unit="km"/>\n </Workout>\n')
                if len(buf) >= 5000:
                    fh.write("".join(buf).encode())
                    buf = []
            buf.append("</HealthData>\n")
            fh.write("".join(buf).encode())
    tmp.replace(path)


def _run_measured(argv: list[str]) -> tuple[float, float, float]:
    """Run ``python ARGV`` as a child; (wall s, peak RSS MB, CPU s user + system)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.execv(sys.executable, [sys.executable, *argv])
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child {argv} failed with status {status}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


ET_CHILD = """
import sys, time, xml.etree.ElementTree as ET
t0 = time.perf_counter()
tree = ET.parse(sys.argv[1])
n = sum(1 for e in tree.getroot() if e.tag in ("Record", "Workout"))
took = time.perf_counter() - t0
print(f"  ElementTree.parse alone: {took:.2f} s for {n:,} records", file=sys.stderr)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "crampsense-bench")
    ap.add_argument("--no-etree", action="store_true", help="Skip the ElementTree comparison.")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    export = args.dir / f"export-{args.records}.zip"
    if not export.exists():
        t0 = time.perf_counter()
        build_export(export, args.records)
        print(f"built {export} ({export.stat().st_size / 1e6:.0f} MB zip) in "
              f"{time.perf_counter() - t0:.0f} s")
    with zipfile.ZipFile(export) as z:
        xml_mb = z.getinfo("apple_health_export/Exportieren.xml").file_size / 1e6
    print(f"export: {args.records:,} records, {xml_mb:.0f} MB of XML")

    walls, rsss, cpus = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as home:
            env_home = {"CRAMPSENSE_HOME": home}
            os.environ.update(env_home)
            out_file = Path(home) / "out.json"
            wall, rss, cpu = _run_measured(
                ["-c", ("import sys; from crampsense.cli.main import main; "
                        f"sys.stdout = open({str(out_file)!r}, 'w'); "
                        f"main(['import', 'apple-health', {str(export)!r}, '--json'])")])
            result = json.loads(out_file.read_text())
        walls.append(wall)
        rsss.append(rss)
        cpus.append(cpu)
        print(f"  crampsense import: {wall:6.2f} s wall, {cpu:6.2f} s CPU, peak RSS {rss:5.0f} MB "
              f"({result['records_read']:,} read, {result['days_added']:,} day values stored)")
    print(f"crampsense import: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s; "
          f"CPU best {min(cpus):.2f} s; peak RSS best {min(rsss):.0f} MB, median "
          f"{statistics.median(rsss):.0f} MB (targets < {WALL_TARGET_S:.0f} s, "
          f"< {RSS_TARGET_MB:.0f} MB)")
    print(f"machine load average while running: {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} cores); wall time grows with other work, CPU time much less")

    if not args.no_etree:
        xml_path = args.dir / f"export-{args.records}-nodtd.xml"
        if not xml_path.exists():
            with zipfile.ZipFile(export) as z, xml_path.open("wb") as out:
                text = z.read("apple_health_export/Exportieren.xml")
                start = text.index(b"<!DOCTYPE")
                root = text.index(b"<HealthData")
                out.write(text[:start] + text[root:])
                del text
        script = args.dir / "et_child.py"
        script.write_text(ET_CHILD)
        wall, rss, cpu = _run_measured([str(script), str(xml_path)])
        print(f"xml.etree.ElementTree.parse (already extracted, parse only): {wall:.2f} s "
              f"wall incl. start-up, {cpu:.2f} s CPU, peak RSS {rss:.0f} MB")
    ok = min(walls) < WALL_TARGET_S and min(rsss) < RSS_TARGET_MB
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
