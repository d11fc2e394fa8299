"""Sample schema: the bundled set, the three input formats, real Do-Not-Answer data, and bad-data errors."""

import csv
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from proguard.data import BUNDLED_SAMPLES, DataError, load_samples
from taxonomy import load_taxonomy, taxonomy_from_data
from reference_data import DO_NOT_ANSWER, private_copy

TAX = load_taxonomy("default")
DNA = DO_NOT_ANSWER


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_bundled_samples_cover_all_modalities():
    ds = load_samples(BUNDLED_SAMPLES, TAX)
    assert len(ds) >= 30
    assert set(ds["modality"]) == {"text", "image", "text_image", "video", "text_video", "audio", "text_audio"}
    unsafe = [r for r in ds if "unsafe" in (r["request_label"], r["response_label"])]
    assert unsafe and all(r["category"] in TAX for r in unsafe)
    row = next(r for r in ds if r["modality"] == "image")
    assert isinstance(row["image"], Image.Image) and row["response_label"] is None
    assert next(r for r in ds if r["id"] == "image-05")["category"] == TAX.find("Weapons").id


def test_parquet_and_dataset_dir_load_the_same_rows(tmp_path):
    ds = load_samples(BUNDLED_SAMPLES, TAX)
    ds.to_parquet(str(tmp_path / "s.parquet"))
    ds.save_to_disk(str(tmp_path / "dir"))
    for source in (tmp_path / "s.parquet", tmp_path / "dir"):
        # The saved rows point at the bundled images by absolute path, outside tmp_path: allowed explicitly.
        again = load_samples(source, TAX, allow_outside_data=True)
        assert again["id"] == ds["id"] and again["category"] == ds["category"]
        assert again[16]["image"].tobytes() == ds[16]["image"].tobytes()


@pytest.mark.skipif(not DNA.exists(), reason=f"reference data absent: {DNA}")
def test_real_do_not_answer_responses_load(tmp_path):
    with open(private_copy(DNA) / "do_not_answer_full_with_responses.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    tree: dict[str, list[str]] = {}
    for r in rows:
        subs = tree.setdefault(r["risk_area"], [])
        if r["types_of_harm"] not in subs:
            subs.append(r["types_of_harm"])
    tax = taxonomy_from_data({"categories": [{"name": a, "subcategories": [{"name": h} for h in hs]} for a, hs in tree.items()]})
    models = [c[: -len("_response")] for c in rows[0] if c.endswith("_response")]
    samples = [
        {
            "id": f"{r['id']}-{m}",
            "modality": "text",
            "request": r["question"],
            "response": r[f"{m}_response"],
            "request_label": "unsafe",
            "response_label": "unsafe" if r[f"{m}_harmful"] == "1" else "safe",
            "category": r["types_of_harm"],
            "group": f"q{r['id']}",  # one question, six model responses
        }
        for r in rows
        for m in models
    ]
    ds = load_samples(write_jsonl(tmp_path / "dna.jsonl", samples), tax)
    assert len(ds) == 939 * 6 == 5634
    assert ds["response_label"].count("unsafe") == 193  # the human 'harmful' labels
    assert ds[0]["category"] == tax.find(rows[0]["types_of_harm"]).id

    # The split keeps each question's six rows together (per-sample splitting put all 360 eval_id
    # questions in train too), with a harm type held out.
    from proguard.tasks import TaskConfig, build_tasks

    held = tax.find(rows[0]["types_of_harm"]).id
    tasks = build_tasks(ds, tax, TaskConfig(holdout=[held], eval_fraction=0.1, seed=0))
    question = dict(zip(ds["id"], ds["request"], strict=True))
    seen = {split: {question[s] for s in tasks[split]["sample_id"]} for split in tasks}
    assert seen["eval_id"] and not (seen["train"] & seen["eval_id"]) and not (seen["train"] & seen["eval_ood"])


GOOD = {"id": "a", "modality": "text", "request": "hi", "request_label": "safe"}


@pytest.mark.parametrize(
    "row, field, what",
    [
        ({**GOOD, "category": "Underwater Basket Weaving", "request_label": "unsafe"}, "category", "not an ID or name"),
        ({**GOOD, "category": "C99S9", "request_label": "unsafe"}, "category", "not an ID or name"),
        ({**GOOD, "request_label": "harmful"}, "request_label", "must be safe or unsafe"),
        ({**GOOD, "response": "ok", "response_label": "maybe"}, "response_label", "must be safe or unsafe"),
        ({**GOOD, "response": "ok"}, "response_label", "required when a response is given"),
        ({**GOOD, "response_label": "safe"}, "response_label", "given without a response"),
        ({**GOOD, "request_label": "unsafe"}, "category", "required when a label is unsafe"),
        ({**GOOD, "category": "Weapons"}, "category", "every label is safe"),
        ({**GOOD, "modality": "smell"}, "modality", "must be one of"),
        ({**GOOD, "image": "pic.png"}, "image", "text samples carry no image"),
        ({"id": "a", "modality": "image", "request_label": "safe"}, "image", "required for image samples"),
        ({"id": "a", "modality": "image", "request": "hi", "image": "pic.png", "request_label": "safe"}, "modality", "no request or response text"),
        ({"id": "a", "modality": "text_image", "image": "pic.png", "request_label": "safe"}, "request", "required for text_image"),
        ({**GOOD, "modality": "text_image", "image": "missing.png"}, "image", "file not found"),
        ({**GOOD, "modality": "text_image", "image": "broken.png"}, "image", "unreadable"),
        ({**GOOD, "request": 5}, "request", "must be a string"),
        ({**GOOD, "labels": "x"}, "labels", "unknown field"),
        ({**GOOD, "id": None}, "id", "missing"),
    ],
)
def test_bad_rows_name_file_row_and_field(tmp_path, row, field, what):
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    path = write_jsonl(tmp_path / "data.jsonl", [GOOD | {"id": "ok"}, row])
    with pytest.raises(DataError) as info:
        load_samples(path, TAX)
    message = str(info.value)
    assert f"{path}: row 2: {field}: " in message and what in message


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    rows = [GOOD | {"id": str(i), "request_label": "bad"} for i in range(30)]
    with pytest.raises(DataError) as info:
        load_samples(write_jsonl(tmp_path / "d.jsonl", rows), TAX)
    assert "30 problem(s)" in str(info.value) and "row 30" not in str(info.value) and "10 more" in str(info.value)


def test_duplicate_ids_and_bad_json_are_errors(tmp_path):
    with pytest.raises(DataError, match=r"row 2: id: duplicate of row 1"):
        load_samples(write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD]), TAX)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl: row 2: not valid JSON"):
        load_samples(bad, TAX)
    with pytest.raises(DataError, match="unsupported format"):
        load_samples(bad.with_suffix(".csv").write_text("") or bad.with_suffix(".csv"), TAX)
    with pytest.raises(DataError, match="no such file"):
        load_samples(tmp_path / "nope.jsonl", TAX)


def test_image_bytes_are_accepted(tmp_path):
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, format="PNG")
    ds = datasets.Dataset.from_list(
        [{"id": "b", "modality": "image", "image": {"bytes": buf.getvalue(), "path": None}, "request_label": "safe"}],
        features=datasets.Features(
            {"id": datasets.Value("string"), "modality": datasets.Value("string"), "image": datasets.Image(),
             "request_label": datasets.Value("string")}
        ),
    )
    ds.to_parquet(str(tmp_path / "b.parquet"))
    loaded = load_samples(tmp_path / "b.parquet", TAX)
    assert loaded[0]["image"].getpixel((0, 0)) == (255, 0, 0)


def test_media_paths_outside_the_data_folder_are_refused_unless_allowed(tmp_path):
    """Absolute paths, ../ and links that leave the data file's folder are an error naming the path."""
    from PIL import Image

    from taxonomy import load_taxonomy

    tax = load_taxonomy("default")
    data_dir, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data_dir.mkdir()
    elsewhere.mkdir()
    Image.new("RGB", (8, 8)).save(elsewhere / "secret.png")
    Image.new("RGB", (8, 8)).save(data_dir / "ok.png")
    (data_dir / "link.png").symlink_to(elsewhere / "secret.png")
    row = {"id": "a", "modality": "image", "request_label": "safe"}
    for image in (str(elsewhere / "secret.png"), "../elsewhere/secret.png", "link.png"):
        path = data_dir / "samples.jsonl"
        path.write_text(json.dumps({**row, "image": image}) + "\n")
        with pytest.raises(DataError, match=r"row 1: image: .* outside the data file's folder"):
            load_samples(path, tax)
        assert len(load_samples(path, tax, allow_outside_data=True)) == 1
    path.write_text(json.dumps({**row, "image": "ok.png"}) + "\n")
    assert len(load_samples(path, tax)) == 1


def test_optional_group_field_is_kept_and_checked(tmp_path):
    from proguard.data import DataError, load_samples
    from taxonomy import load_taxonomy

    tax = load_taxonomy("default")
    rows = [{"id": f"q1-{m}", "modality": "text", "request": "Q?", "response": "A.", "request_label": "unsafe",
             "response_label": "safe", "category": "C8S1", "group": "q1"} for m in ("a", "b")]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_samples(path, tax)
    assert ds["group"] == ["q1", "q1"]
    rows[1]["group"] = 7
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"row 2: group: must be a string"):
        load_samples(path, tax)
