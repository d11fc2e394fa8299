"""VLGuard (Zong et al., ICML 2024; github.com/ys-zong/VLGuard ``data/test.json`` + ``data/test.zip``; hf
ys-zong/VLGuard, gated): ``test.json`` with the images of ``test.zip`` unpacked next to it
(``test/<subfolder>/<file>``, or the subfolders right beside ``test.json``).

Records as released: ``id``, ``image`` (a path relative to the image folder), ``safe`` (bool, the
image's label), ``harmful_category`` and ``harmful_subcategory`` (unsafe images), and ``instr-resp``:
for a safe image one ``{"safe_instruction", "response"}`` and one ``{"unsafe_instruction", "response"}``
entry, for an unsafe image ``{"instruction", "response"}`` entries. Each record gives an image-level
sample (the image's label) and one text+image prompt-level sample per instruction: unsafe when the
image or the instruction is. The responses are reference answers, not labelled: not shown.

Counts in the GitHub ``data/test.json`` (verified): 1,000 records, 442 unsafe images, 1,558 instructions
of which 1,000 unsafe (442 on unsafe images, 558 unsafe instructions on safe images, which carry no
category). Labels are lowercase: ``harmful_category`` is one of ``privacy``, ``risky behavior``,
``deception``, ``discrimination``; ``harmful_subcategory`` (the map's keys) one of ``personal data``,
``professional advice``, ``political``, ``sexually explicit``, ``violence``, ``disinformation``,
``sex``, ``race``, ``other`` (``other`` only under ``discrimination``). The category is the parent of
its subcategory (``source_parents``; ``proguard suites map`` ranks ``"category: subcategory"``).

Images absent (``test.zip`` not unpacked): the benchmark is reported missing with the unzip command and
the rest of a suite runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from proguard.suites.base import Adapter, BenchSample, SuiteDataError, flag, group_of, image_cell, need, read_json_records


class VLGuard(Adapter):
    """VLGuard test (image level and text+image prompt level, 4 categories / 9 subcategories)."""

    name = "vlguard"
    title = "VLGuard"
    folder = "vlguard"
    files = ("test.json", "data/test.json")
    published = "github.com/ys-zong/VLGuard (data/test.json + data/test.zip), hf ys-zong/VLGuard (gated)"
    label_parents = {"personal data": "privacy", "professional advice": "risky behavior", "political": "risky behavior",
                     "sexually explicit": "risky behavior", "violence": "risky behavior",
                     "disinformation": "deception", "sex": "discrimination", "race": "discrimination",
                     "other": "discrimination"}
    levels = ("image", "prompt")
    categories = True
    modality = "text_image"

    def read(self, path: Path) -> Iterator[BenchSample]:
        images = path.parent / "test" if (path.parent / "test").is_dir() else path.parent
        self._fix = (f"unpack the release's images next to it: cd {path.parent} && unzip test.zip "
                     f"(the image paths in test.json are relative to {path.parent / 'test'})")
        for i, rec in read_json_records(path):
            yield from self.from_record(rec, i, str(path), images)

    def from_record(self, rec: dict, row: int, origin: str, base: Path | None) -> Iterator[BenchSample]:
        where = f"{origin}: record {row}"
        safe = flag(need(rec, "safe", where), where, "safe")
        if safe is None:
            raise SuiteDataError(f"{where}: safe: empty")
        image = image_cell(need(rec, "image", where), base, where, fix=getattr(self, "_fix", None))
        sid = str(rec.get("id") or row)
        cats = () if safe else tuple(str(rec[k]) for k in ("harmful_subcategory",) if rec.get(k))
        parents = (str(rec["harmful_category"]) if rec.get("harmful_category") else None,) if cats else ()
        group = group_of(str(rec.get("image")))
        yield BenchSample(f"vlguard-{sid}-image", "image", None, None, "safe" if safe else "unsafe", None, group, cats,
                          image, parents)
        pairs = need(rec, "instr-resp", where)
        if not isinstance(pairs, list):
            raise SuiteDataError(f"{where}: instr-resp: expected a list")
        for j, pair in enumerate(pairs):
            if not isinstance(pair, dict):
                raise SuiteDataError(f"{where}: instr-resp[{j}]: expected an object")
            if "safe_instruction" in pair:
                instr, label = pair["safe_instruction"], "safe" if safe else "unsafe"
            elif "unsafe_instruction" in pair:
                instr, label = pair["unsafe_instruction"], "unsafe"
            elif "instruction" in pair:
                instr, label = pair["instruction"], "safe" if safe else "unsafe"
            else:
                raise SuiteDataError(f"{where}: instr-resp[{j}]: no safe_instruction, unsafe_instruction or instruction key")
            if not isinstance(instr, str) or not instr.strip():
                raise SuiteDataError(f"{where}: instr-resp[{j}]: empty instruction")
            # An unsafe instruction on a safe image has no category label in VLGuard.
            unsafe_image = label == "unsafe" and not safe
            yield BenchSample(f"vlguard-{sid}-{j}", "text_image", instr, None, label, None, group,
                              cats if unsafe_image else (), image, parents if unsafe_image else ())
