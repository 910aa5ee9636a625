"""Small export files in the real shapes of Apple Health, Cronometer and Gadgetbridge, written by
code (shapes from the formats' public documentation and the variants their users report)."""

from __future__ import annotations

import sqlite3
import struct
import zipfile
from pathlib import Path

AH_DTD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 13 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary|ClinicalRecord)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
]>
"""
# The iOS 16.0 DTD bug: an ATTLIST that no XML parser accepts (an attribute declared without a
# type), the reason importers strip the DTD.
AH_BROKEN_DTD = AH_DTD.replace("  locale CDATA #REQUIRED\n", "  locale CDATA #REQUIRED\n  key\n")


def rec(kind: str, value: str, start: str, *, unit: str = "", source: str = "iPhone",
        end: str | None = None, children: str = "") -> str:
    unit_attr = f' unit="{unit}"' if unit else ""
    head = (f' <Record type="{kind}" sourceName="{source}" sourceVersion="17.5"{unit_attr} '
            f'creationDate="{start}" startDate="{start}" endDate="{end or start}" '
            f'value="{value}"')
    return f"{head}>\n{children} </Record>\n" if children else f"{head}/>\n"


Q = "HKQuantityTypeIdentifier"
SLEEP = "HKCategoryTypeIdentifierSleepAnalysis"
CAT = "HKCategoryValueSleepAnalysis"


def day_records(day: str = "2024-08-07", *, water_ml: int = 500) -> str:
    """One day: water from two apps (the same glass twice), steps from phone and watch (overlap),
    minerals in display units, caffeine, alcohol, a Correlation repeating a record, sleep stages
    and a workout with WorkoutStatistics."""
    z = "+1200"
    nxt = f"{day[:8]}{int(day[8:]) + 1:02d}"
    return "".join([
        rec(f"{Q}DietaryWater", str(water_ml), f"{day} 12:58:00 {z}", unit="mL",
            source="WaterMinder"),
        rec(f"{Q}DietaryWater", f"{water_ml / 29.5735295625:.4f}", f"{day} 12:59:00 {z}",
            unit="fl_oz_us", source="MyFitnessPal"),
        rec(f"{Q}DietaryWater", "1", f"{day} 18:00:00 {z}", unit="L", source="WaterMinder"),
        rec(f"{Q}DietaryMagnesium", "0.3", f"{day} 08:00:00 {z}", unit="g",
            source="MyFitnessPal"),
        rec(f"{Q}DietaryPotassium", "350000", f"{day} 08:00:00 {z}", unit="mcg",
            source="MyFitnessPal"),
        rec(f"{Q}DietaryCaffeine", "95", f"{day} 08:05:00 {z}", unit="mg", source="Coffee"),
        rec(f"{Q}NumberOfAlcoholicBeverages", "2", f"{day} 20:00:00 {z}", unit="count",
            source="Drinks"),
        rec(f"{Q}StepCount", "1000", f"{day} 10:00:00 {z}", unit="count", source="iPhone",
            end=f"{day} 10:10:00 {z}",
            children='  <MetadataEntry key="HKMetadataKeySyncVersion" value="2"/>\n'),
        rec(f"{Q}StepCount", "1200", f"{day} 10:01:00 {z}", unit="count", source="Apple Watch",
            end=f"{day} 10:11:00 {z}"),
        rec(f"{Q}StepCount", "300", f"{day} 15:00:00 {z}", unit="count", source="iPhone"),
        rec(f"{Q}HeartRate", "61", f"{day} 15:00:00 {z}", unit="count/min",
            source="Apple Watch"),
        rec(f"{Q}ActiveEnergyBurned", "418.4", f"{day} 17:10:00 {z}", unit="kJ",
            source="Apple Watch"),
        rec(SLEEP, f"{CAT}InBed", f"{day} 22:30:00 {z}", source="iPhone",
            end=f"{nxt} 06:30:00 {z}"),
        rec(SLEEP, f"{CAT}AsleepCore", f"{day} 23:00:00 {z}", source="Apple Watch",
            end=f"{nxt} 02:00:00 {z}"),
        rec(SLEEP, f"{CAT}AsleepDeep", f"{nxt} 02:00:00 {z}", source="Apple Watch",
            end=f"{nxt} 03:00:00 {z}"),
        rec(SLEEP, f"{CAT}Awake", f"{nxt} 03:00:00 {z}", source="Apple Watch",
            end=f"{nxt} 03:20:00 {z}"),
        rec(SLEEP, f"{CAT}AsleepREM", f"{nxt} 03:20:00 {z}", source="Apple Watch",
            end=f"{nxt} 06:00:00 {z}"),
        (f' <Correlation type="HKCorrelationTypeIdentifierFood" sourceName="MyFitnessPal" '
         f'startDate="{day} 12:00:00 {z}" endDate="{day} 12:00:00 {z}">\n'
         + rec(f"{Q}DietaryWater", "250", f"{day} 12:00:00 {z}", unit="mL",
               source="MyFitnessPal") + " </Correlation>\n"),
        (f' <Workout workoutActivityType="HKWorkoutActivityTypeRunning" duration="45" '
         f'durationUnit="min" sourceName="Apple Watch" startDate="{day} 17:00:00 {z}" '
         f'endDate="{day} 17:45:00 {z}">\n'
         f'  <WorkoutStatistics type="{Q}DistanceWalkingRunning" startDate="{day} 17:00:00 {z}"'
         f' endDate="{day} 17:45:00 {z}" sum="6.2" unit="mi"/>\n </Workout>\n'),
    ])


def health_xml(body: str, *, dtd: str = AH_DTD) -> str:
    return (f'{dtd}<HealthData locale="de_DE">\n <ExportDate value="2024-08-09 09:00:00 +1200"/>'
            f'\n <Me HKCharacteristicTypeIdentifierDateOfBirth=""/>\n{body}</HealthData>\n')


def health_zip(path: Path, xml: str, *, name: str = "Exportieren.xml") -> Path:
    """export.zip with a localised XML name, the clinical CDA file and a workout route."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("apple_health_export/export_cda.xml",
                   '<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>')
        z.writestr("apple_health_export/workout-routes/route_2024-08-07_5.00pm.gpx", "<gpx/>")
        z.writestr(f"apple_health_export/{name}", xml)
    return path


def claim_huge_size(path: Path, entry: str, size: int = 0xFFFF_FFF0) -> None:
    """Rewrite the central-directory 'uncompressed size' of ``entry`` to ``size``."""
    blob = bytearray(path.read_bytes())
    name = entry.encode()
    pos = blob.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", blob, pos + 28)[0]
        if bytes(blob[pos + 46 : pos + 46 + name_len]) == name:
            struct.pack_into("<I", blob, pos + 24, size)
        pos = blob.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(blob))


DAILY_HEADER = ("Date,Energy (kcal),Alcohol (g),Caffeine (mg),Water (g),B1 (Thiamine) (mg),"
                "Calcium (mg),Iron (mg),Magnesium (mg),Potassium (mg),Selenium (µg),"
                "Sodium (mg),Vitamin A (IU),Completed")


def gadgetbridge_db(path: Path, *, start_s: int = 1_723_000_000, minutes: int = 180) -> Path:
    """A Gadgetbridge.db with DEVICE, a Mi Band table (seconds) and a Huawei table (ms)."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE DEVICE (_id INTEGER PRIMARY KEY, NAME TEXT, MANUFACTURER TEXT,
                             IDENTIFIER TEXT, TYPE INTEGER, MODEL TEXT, ALIAS TEXT);
        CREATE TABLE MI_BAND_ACTIVITY_SAMPLE (TIMESTAMP INTEGER NOT NULL, DEVICE_ID INTEGER
            NOT NULL, USER_ID INTEGER NOT NULL, RAW_INTENSITY INTEGER, STEPS INTEGER,
            RAW_KIND INTEGER, HEART_RATE INTEGER, PRIMARY KEY (TIMESTAMP, DEVICE_ID));
        CREATE TABLE HUAWEI_ACTIVITY_SAMPLE (TIMESTAMP INTEGER NOT NULL, DEVICE_ID INTEGER
            NOT NULL, USER_ID INTEGER NOT NULL, OTHER_TIMESTAMP INTEGER, SOURCE INTEGER,
            RAW_KIND INTEGER, RAW_INTENSITY INTEGER, STEPS INTEGER, CALORIES INTEGER,
            DISTANCE INTEGER, SPO INTEGER, HEART_RATE INTEGER,
            PRIMARY KEY (TIMESTAMP, DEVICE_ID));
    """)
    con.execute("INSERT INTO DEVICE VALUES (1, 'Mi Band 4', 'Xiaomi', 'C8:0F:10:00:00:01', "
                "13, NULL, NULL)")
    con.execute("INSERT INTO DEVICE VALUES (2, 'HUAWEI Band 6', 'Huawei', 'AA:BB:CC:00:00:02',"
                " 200, NULL, NULL)")
    mi = []
    hw = []
    for m in range(minutes):
        ts = start_s + 60 * m
        # Mi Band: 10 steps a minute, HR 70 (255 = no reading every 10th), kind 0x19 & 0xF = 9
        mi.append((ts, 1, 1, 20, 10, 0x19 if m >= minutes - 60 else 1, 255 if m % 10 == 0
                   else 70))
        # Huawei, same minutes, milliseconds: 12 steps a minute (the wrist with more counts)
        hw.append((ts * 1000, 2, 1, None, 1, 7 if m >= minutes - 30 else 1, 10, 12, 0, 0, 0,
                   0))
    con.executemany("INSERT INTO MI_BAND_ACTIVITY_SAMPLE VALUES (?,?,?,?,?,?,?)", mi)
    con.executemany("INSERT INTO HUAWEI_ACTIVITY_SAMPLE VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", hw)
    con.commit()
    con.close()
    return path
