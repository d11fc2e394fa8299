"""Tests of the task generator (proguard.tasks): prompts, ID maps, the OOD rule, determinism, balance, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from proguard.cli import main as cli_main
import proguard.tasks.rows
from proguard.data import BUNDLED_SAMPLES, Sample, load_samples, samples_to_dataset
from proguard.tasks.leakcheck import PromptScanner
from proguard.protocol import PromptConfig, build_messages
from proguard.tasks import (
    LeakError,
    TaskConfig,
    TaskError,
    build_tasks,
    check_split,
    default_tasks,
    format_summary,
    generate_tasks,
)
from rewards.types import MEDIUM, MODALITIES, TARGET_COLUMNS, Target
from taxonomy import load_taxonomy, parent_id_of, parse_id
from task_helpers import assert_task_matches_protocol, samples_by_id, synthetic_samples, visible_taxonomy
from reference_data import PROGUARD_TAXONOMY, private_copy

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def tax():
    return load_taxonomy("default")


@pytest.fixture(scope="module")
def bundled(tax):
    return load_samples(BUNDLED_SAMPLES, tax)


@pytest.fixture(scope="module")
def synth(tax):
    return synthetic_samples(tax, per_leaf=2, safe=10)


def _all_rows(tasks):
    return [row for split in tasks.values() for row in split]


def _asked(tax, row):
    """The node a task's prompt asks for: the category itself at subcategory level, else its top level."""
    cat = row["category"]
    return cat if row["category_level"] == "subcategory" or tax.parent(cat) is None else tax.parent(cat).id


# ---- prompts and ID maps ----------------------------------------------------------------------
def test_default_tasks_are_the_plain_prompt_of_every_sample(tax, bundled):
    tasks = default_tasks(bundled, tax)
    samples = samples_by_id(bundled)
    assert tasks["sample_id"] == bundled["id"]
    assert set(TARGET_COLUMNS) <= set(tasks.column_names)
    for row in tasks:
        sample = samples[row["sample_id"]]
        assert row["prompt"][0]["content"][0]["text"] == build_messages(
            row["modality"], sample["request"], sample["response"], tax)[0]["content"][0]["text"]
        assert_task_matches_protocol(row, tax, samples)
        assert json.loads(row["id_map"]) == {n.id: n.id for n in tax.nodes()}
        assert row["ood"] is False and row["ood_name"] is None and row["ood_synonyms"] == [] and row["hidden"] == []
        for medium in ("image", "video", "audio"):  # each task carries exactly its modality's medium
            assert (row[medium] is not None) == (MEDIUM[row["modality"]] == medium), (row["task_id"], medium)


@pytest.mark.parametrize(
    "config",
    [
        TaskConfig(holdout=["C8"], shuffle_ids=True, seed=3),
        TaskConfig(holdout=["C4S1"], hide_fraction=0.4, own_category_hide_prob=0.5, seed=4),
        TaskConfig(hide_fraction=0.5, hide_level="subcategory", shuffle_ids=True, seed=5),
        TaskConfig(hide_fraction=1.0, hide_level="subcategory", seed=6),
        TaskConfig(holdout=["C1"], shuffle_ids=True, prompt=PromptConfig(descriptions=False, examples=False), seed=7),
    ],
    ids=["holdout-shuffle", "subcategory-holdout-hiding", "leaf-hiding-shuffle", "all-leaves-hidden", "no-desc"],
)
def test_every_task_is_what_the_protocol_builds_for_its_visible_taxonomy(tax, synth, config):
    tasks = build_tasks(synth, tax, config)
    samples = samples_by_id(synth)
    for row in _all_rows(tasks):
        assert_task_matches_protocol(row, tax, samples, config.prompt)


def test_shuffled_id_maps_round_trip_and_are_dense(tax, synth):
    tasks = build_tasks(synth, tax, TaskConfig(holdout=["C3"], hide_fraction=0.3, shuffle_ids=True, seed=11))
    orders = set()
    for row in _all_rows(tasks):
        id_map = json.loads(row["id_map"])
        target = Target.from_columns(row)
        system = row["prompt"][0]["content"][0]["text"]
        cats = sorted(parse_id(v)[0] for v in id_map.values() if parse_id(v)[1] is None)
        assert cats == list(range(1, len(cats) + 1)), "prompt IDs must be dense: gaps reveal hidden categories"
        for src, shown in id_map.items():
            assert target.source_id(target.prompt_id(src)) == src
            assert f"{shown}: {tax.get(src).name}" in system
        assert not {"C3", "C3S1", "C3S2", "C3S3"} & set(id_map)
        orders.add(tuple(sorted(id_map, key=lambda s: (parse_id(id_map[s])[0], parse_id(id_map[s])[1] or 0))))
    assert len(orders) > 10, "shuffle_ids must vary the order between tasks"


# ---- the OOD rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["category", "subcategory"])
def test_ood_exactly_when_the_asked_node_or_its_parent_is_hidden(tax, synth, level):
    config = TaskConfig(hide_fraction=0.5, hide_level=level, seed=21)
    tasks = build_tasks(synth, tax, config)
    n_ood = n_in = 0
    for row in tasks["train"]:
        unsafe = "unsafe" in (row["request_label"], row["response_label"])
        if not unsafe:
            assert not row["ood"] and row["category"] is None
            continue
        asked = _asked(tax, row)
        parent = tax.parent(asked)
        expect = asked in row["hidden"] or (parent is not None and parent.id in row["hidden"])
        assert row["ood"] is expect, row["task_id"]
        if expect:
            n_ood += 1
            node = tax.get(asked)
            assert (row["ood_name"], row["ood_synonyms"]) == (node.name, list(node.synonyms))
            assert Target.from_columns(row).prompt_id(row["category"]) not in json.loads(row["id_map"]).values() \
                or row["category"] not in json.loads(row["id_map"])
        else:
            n_in += 1
            assert row["ood_name"] is None and row["ood_synonyms"] == []
            assert asked in json.loads(row["id_map"])
    assert n_ood > 5 and n_in > 5


def test_ood_target_is_the_node_the_prompt_asks_for(tax, synth):
    build = generate_tasks(synth, tax, TaskConfig(holdout=["C8"], seed=1))
    ood = build.tasks["eval_ood"]
    assert len(ood) == 3 * 2 * len(MODALITIES)  # 3 subcategories x 7 modalities x 2 samples each
    for row in ood:
        node = tax.get(row["category"])
        top = PromptConfig().category_levels[row["modality"]] == "category"  # text+image/video/audio ask for C<i>
        want = tax.parent(node.id) if top else node
        assert row["ood"] and row["ood_name"] == want.name and row["ood_synonyms"] == list(want.synonyms)


def test_held_out_subcategory_under_a_listed_parent(tax, synth):
    build = generate_tasks(synth, tax, TaskConfig(holdout=["C8S1"], seed=1))
    ood = build.tasks["eval_ood"]
    assert {r["modality"] for r in ood} == {"text", "image", "video", "audio"}  # the subcategory-level ones
    assert all(r["ood_name"] == "Weapons" for r in ood)
    # Text+image prompts ask only for C<i>: the listed parent is the right answer, so these are not OOD;
    # they may not train either, so they are reported as excluded, never dropped silently.
    excluded = build.summary["excluded"]
    assert excluded["count"] == 2 * 3 and all(s in synth["id"] for s in excluded["sample_ids"])  # 2 per text+medium
    for split in ("train", "eval_id"):
        assert "C8S1" not in build.tasks[split]["category"]


def test_own_category_probability(tax, synth):
    always = build_tasks(synth, tax, TaskConfig(own_category_hide_prob=1.0, seed=2))["train"]
    unsafe = [r for r in always if r["category"] is not None]
    assert unsafe and all(r["ood"] for r in unsafe)
    assert all(r["hidden"] == [] for r in always if r["category"] is None)

    never = build_tasks(synth, tax, TaskConfig(hide_fraction=1.0, own_category_hide_prob=0.0, seed=2))["train"]
    for row in never:
        if row["category"] is not None:  # everything else hidden, the sample's own category kept
            assert not row["ood"]
            assert [c.name for c in visible_taxonomy(row, tax).categories] == [tax.get(parent_id_of(row["category"]) or row["category"]).name]

    half = build_tasks(synth, tax, TaskConfig(own_category_hide_prob=0.5, seed=2, eval_fraction=0))["train"]
    share = sum(r["ood"] for r in half) / sum(r["category"] is not None for r in half)
    assert 0.3 < share < 0.7

    everything = build_tasks(synth, tax, TaskConfig(hide_fraction=1.0, seed=2))["train"]
    assert all(r["ood"] == (r["category"] is not None) for r in everything)
    assert all(r["id_map"] == "{}" for r in everything)


def test_eval_splits_hide_exactly_the_holdout(tax, synth):
    tasks = build_tasks(synth, tax, TaskConfig(holdout=["C2", "C5S1"], hide_fraction=0.5, own_category_hide_prob=0.5))
    held = ["C2", "C2S1", "C2S2", "C5S1"]
    for row in tasks["eval_id"]:
        assert row["hidden"] == held and not row["ood"]
    for row in tasks["train"]:
        assert set(held) <= set(row["hidden"])
    assert all(r["ood"] for r in tasks["eval_ood"])


# ---- determinism, balance ---------------------------------------------------------------------
def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tax, synth, tmp_path):
    config = TaskConfig(holdout=["C8"], hide_fraction=0.3, own_category_hide_prob=0.3, shuffle_ids=True,
                        balance_modalities="up", seed=9)
    for name in ("a", "b"):
        build_tasks(synth, tax, config).save_to_disk(str(tmp_path / name))
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a == b and len(a) >= 10
    build_tasks(synth, tax, TaskConfig(**{**config.__dict__, "seed": 10})).save_to_disk(str(tmp_path / "c"))
    c = _files(tmp_path / "c")
    assert c["train/data-00000-of-00001.arrow"] != a["train/data-00000-of-00001.arrow"]


def test_default_tasks_are_deterministic(tax, bundled, tmp_path):
    default_tasks(bundled, tax).save_to_disk(str(tmp_path / "a"))
    default_tasks(load_samples(BUNDLED_SAMPLES, tax), tax).save_to_disk(str(tmp_path / "b"))
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


@pytest.mark.parametrize("mode", ["down", "up"])
def test_modality_balance(tax, mode):
    rows = [Sample(f"t{i}", "text", "hi", None, None, "safe", None, None) for i in range(30)]
    img = str(Path(BUNDLED_SAMPLES).parent / "images" / "sun.png")
    rows += [Sample(f"i{i}", "image", None, None, img, "safe", None, None) for i in range(7)]
    rows += [Sample(f"m{i}", "text_image", "hi", None, img, "safe", None, None) for i in range(12)]
    samples = samples_to_dataset(rows)
    build = generate_tasks(samples, tax, TaskConfig(balance_modalities=mode, eval_fraction=0, seed=1))
    train = build.tasks["train"]
    counts = build.summary["splits"]["train"]["modality"]
    want = 7 if mode == "down" else 30
    assert counts == {"image": want, "text": want, "text_image": want}
    assert len(set(train["task_id"])) == len(train)
    if mode == "up":
        assert set(train["sample_id"]) == set(samples["id"])  # every sample kept, rare ones repeated
        assert train["sample_id"].count("i0") in (4, 5)
    else:
        assert len(set(train["sample_id"])) == 21


def test_modality_balance_across_all_seven(tax):
    sample = Path(BUNDLED_SAMPLES).parent
    img, vid, aud = str(sample / "images" / "sun.png"), [str(sample / "video" / "sun.mp4")], str(sample / "audio" / "chime.ogg")
    sizes = {"text": 9, "image": 3, "text_image": 4, "video": 2, "text_video": 5, "audio": 6, "text_audio": 3}
    rows = []
    for m, k in sizes.items():
        media_only = "_" not in m and m != "text"
        for i in range(k):
            rows.append(Sample(f"{m}-{i}", m, None if media_only else "hi", None, img if "image" in m else None,
                               "safe", None, None, vid if "video" in m else None, aud if "audio" in m else None))
    build = generate_tasks(samples_to_dataset(rows), tax, TaskConfig(balance_modalities="down", eval_fraction=0, seed=2))
    assert build.summary["splits"]["train"]["modality"] == dict.fromkeys(sorted(sizes), 2)


# ---- errors ----------------------------------------------------------------------------------------
def test_unknown_holdout_ids(tax, bundled):
    with pytest.raises(TaskError, match=r"holdout: unknown node ID\(s\) C99, C8S9 in taxonomy 'proguard-default'"):
        build_tasks(bundled, tax, TaskConfig(holdout=["C8", "C99", "C8S9"]))


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", True, float("nan")])
def test_hide_fraction_outside_unit_interval(value):
    with pytest.raises(TaskError, match="hide_fraction: must be a number in"):
        TaskConfig(hide_fraction=value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"own_category_hide_prob": 1.2}, "own_category_hide_prob"),
        ({"eval_fraction": 1.0}, "eval_fraction: must be below 1"),
        ({"hide_level": "leaf"}, "hide_level: must be one of category, subcategory"),
        ({"balance_modalities": "yes"}, "balance_modalities"),
        ({"leak_scope": "all"}, "leak_scope"),
        ({"seed": -1}, "seed"),
        ({"holdout": [3]}, "holdout"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(TaskError, match=message):
        TaskConfig(**kwargs)


def test_recipe_task_section_is_parsed_once_into_typed_options(tmp_path):
    """data.tasks is typed at load (TaskOptions), combined with data.prompt into one TaskConfig; bad keys name the recipe."""
    from proguard.tasks.config import TaskOptions
    from proguard.train.recipe import RecipeError, load_recipe

    r = load_recipe(None, ["data.tasks.holdout=[C1,C2S1]", "data.tasks.shuffle_ids=true", "data.prompt.descriptions=false"])
    assert isinstance(r.data.tasks, TaskOptions)
    cfg = r.task_config()
    assert isinstance(cfg, TaskConfig) and cfg.holdout == ["C1", "C2S1"] and cfg.shuffle_ids
    assert cfg.prompt is r.prompt_config() and cfg.prompt.descriptions is False
    assert cfg.prompt.category_levels["text_image"] == "category"  # defaults kept under a partial override
    with pytest.raises(RecipeError, match=r"command line: data.tasks.hide_fracton"):
        load_recipe(None, ["data.tasks.hide_fracton=0.2"])
    with pytest.raises(RecipeError, match="data.tasks.hide_fraction: must be a number in"):
        load_recipe(None, ["data.tasks.hide_fraction=2"])
    with pytest.raises(RecipeError, match="data.tasks.prompt"):
        load_recipe(None, ["data.tasks.prompt.descriptions=false"])


def test_categories_not_in_the_taxonomy_name_the_row(bundled):
    with pytest.raises(TaskError) as err:
        build_tasks(bundled, load_taxonomy("mlcommons"))
    assert "samples[3] (id 'text-04'): category: 'C8S1' is not a node ID of taxonomy 'mlcommons-hazards'" in str(err.value)


def test_bad_sample_rows_are_reported(tax):
    rows = [
        {"id": "a", "modality": "text", "request": "x", "request_label": "unsafe", "category": "Weapons"},
        {"id": "a", "modality": "text", "request": "x", "request_label": "safe", "category": None},
        {"id": "c", "modality": "smell", "request": "x", "request_label": "safe", "category": None},
        {"id": "d", "modality": "text", "request": "x", "request_label": "unsafe", "category": None},
    ]
    with pytest.raises(TaskError) as err:
        build_tasks(datasets.Dataset.from_list(rows), tax)
    text = str(err.value)
    assert "samples[0] (id 'a'): category: 'Weapons' is not a node ID" in text and "load_samples" in text
    assert "samples[1] (id 'a'): id: duplicate of samples[0]" in text
    assert "samples[2] (id 'c'): modality: must be one of" in text
    assert "samples[3] (id 'd'): category: required when a label is unsafe" in text


def test_empty_eval_ood_needs_a_reason(tax, bundled):
    build = generate_tasks(bundled, tax, TaskConfig())
    assert len(build.tasks["eval_ood"]) == 0 and "eval_ood" in build.summary["empty_splits"]
    with pytest.raises(TaskError, match="no unsafe sample falls under it"):
        build_tasks(bundled, tax, TaskConfig(holdout=["C7S2"]))


# ---- CLI -------------------------------------------------------------------------------------------
def test_cli_writes_splits_and_summary(tmp_path, capsys):
    out = tmp_path / "tasks"
    args = ["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "default", "--out", str(out), "--holdout", "C8",
            "--hide-fraction", "0.3", "--hide-own", "0.25", "--shuffle-ids", "--seed", "4", "--balance", "up"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "eval_ood" in printed and "leak check passed" in printed and "C8 Dangerous Goods" in printed
    loaded = datasets.load_from_disk(str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert list(loaded) == ["train", "eval_id", "eval_ood"]
    assert {k: v["tasks"] for k, v in summary["splits"].items()} == {k: len(v) for k, v in loaded.items()}
    assert summary["config"]["own_category_hide_prob"] == 0.25 and summary["holdout"][0]["id"] == "C8"
    assert cli_main(args) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert cli_main([*args, "--overwrite", "--hide-own", "never"]) == 0


# ---- the leak check ------------------------------------------------------------------------------
def _planted(tasks, split, row, **changes):
    """A copy of ``tasks`` where one row of ``split`` has ``changes`` (a planted leak)."""
    rows = tasks[split].cast_column("image", datasets.Image(decode=False)).to_list()
    rows[row] = {**rows[row], **changes}
    planted = datasets.Dataset.from_list(rows, features=tasks[split].features.copy())
    return datasets.DatasetDict({**tasks, split: planted})


def _with_system_text(row, extra):
    prompt = [dict(m, content=[dict(p) for p in m["content"]]) for m in row["prompt"]]
    prompt[0]["content"][0]["text"] += extra
    return prompt


@pytest.fixture(scope="module")
def held_c8(tax, synth):
    return build_tasks(synth, tax, TaskConfig(holdout=["C8"], hide_fraction=0.2, shuffle_ids=True, seed=12))


def test_leak_check_passes_on_the_generated_split(tax, held_c8):
    report = check_split(held_c8, tax, ["C8"])
    assert report["held_out"] == ["C8", "C8S1", "C8S2", "C8S3"]
    assert report["prompts_scanned"] == {k: len(v) for k, v in held_c8.items()}


@pytest.mark.parametrize(
    "split, plant, message",
    [
        ("train", lambda r, t: {"prompt": _with_system_text(r, "\nC99: Weapons.")}, r"shows held-out text 'Weapons'"),
        ("eval_id", lambda r, t: {"prompt": _with_system_text(r, f"\n- {t.get('C8').synonyms[0].upper()}")},
         "shows held-out text"),
        ("train", lambda r, t: {"prompt": _with_system_text(r, "\n" + " ".join(t.get("C8S2").description.split()))},
         "description"),
        ("train", lambda r, t: {"id_map": json.dumps({**json.loads(r["id_map"]), "C8S1": "C99S1"})},
         "a held-out node is in its id_map"),
        ("eval_id", lambda r, t: {"category": "C8S2", "request_label": "unsafe"}, "it targets a held-out node"),
        ("train", lambda r, t: {"ood": True, "ood_name": t.get("C8").name}, "its OOD target is a held-out node"),
        ("eval_ood", lambda r, t: {"ood": False}, "an eval_ood task must be OOD"),
    ],
    ids=["name-in-train", "synonym-in-eval", "description", "id-map", "target", "ood-target", "eval-ood-not-ood"],
)
def test_leak_check_catches_a_planted_leak(tax, held_c8, split, plant, message):
    row = held_c8[split][0]
    tasks = _planted(held_c8, split, 0, **plant(row, tax))
    with pytest.raises(LeakError, match=message) as err:
        check_split(tasks, tax, ["C8"])
    assert repr(row["task_id"]) in str(err.value)


def test_leak_check_catches_a_sample_in_two_splits(tax, held_c8):
    moved = held_c8["train"][0]["sample_id"]
    with pytest.raises(LeakError, match="its sample is also in train"):
        check_split(_planted(held_c8, "eval_id", 0, sample_id=moved), tax, ["C8"])


def test_leak_check_rescans_prompts_it_did_not_see_written(tax, held_c8):
    # a scanner fed the clean prompts must not vouch for a planted copy: its chunks are other memory
    planted = _planted(held_c8, "train", 0, prompt=_with_system_text(held_c8["train"][0], "\nC99: Weapons."))
    with PromptScanner.for_holdout(tax, ["C8"]) as scanner:
        for split in held_c8.values():
            for batch in split.data.table.to_batches():
                scanner.submit(batch)
        assert check_split(held_c8, tax, ["C8"], scanner=scanner)["prompts_scanned"]["train"] == len(held_c8["train"])
        with pytest.raises(LeakError, match="shows held-out text 'Weapons'"):
            check_split(planted, tax, ["C8"], scanner=scanner)


def test_separate_id_and_text_pieces_write_the_same_tasks(tax, synth, held_c8, monkeypatch):
    # taxonomies with too many (node, position) pairs lay out IDs and line text as separate pieces
    monkeypatch.setattr(proguard.tasks.rows, "MAX_MERGED_PIECES", 0)
    again = build_tasks(synth, tax, TaskConfig(holdout=["C8"], hide_fraction=0.2, shuffle_ids=True, seed=12))
    for name, split in held_c8.items():
        assert again[name].data.table.equals(split.data.table), name


def test_leak_check_runs_on_every_build_and_fails_loudly(tmp_path, tax):
    # a visible category's description names the held-out one: every prompt would leak it
    text = (
        "name: leaky\ncategories:\n"
        "  - name: Weapons\n    description: Arms and explosives.\n    synonyms: [Arms]\n"
        "  - name: Violence\n    description: Hurting people, with or without weapons.\n    synonyms: [Assault]\n"
    )
    (tmp_path / "leaky.yaml").write_text(text, encoding="utf-8")
    leaky = load_taxonomy(tmp_path / "leaky.yaml")
    rows = [Sample(f"w{i}", "text", "x", None, None, "unsafe", None, "C1") for i in range(3)]
    rows += [Sample(f"v{i}", "text", "y", None, None, "unsafe", None, "C2") for i in range(3)]
    with pytest.raises(LeakError, match=r"held-out text 'Weapons' \(C1 name\).*with or without weapons"):
        build_tasks(samples_to_dataset(rows), leaky, TaskConfig(holdout=["C1"], eval_fraction=0))


# ---- the real ProGuard taxonomy ---------------------------------------------------------------------


@pytest.mark.skipif(not PROGUARD_TAXONOMY.is_file(), reason=f"reference taxonomy not found at {PROGUARD_TAXONOMY}")
def test_category_disjoint_split_on_the_proguard_taxonomy(capsys):
    tax = load_taxonomy(private_copy(PROGUARD_TAXONOMY))
    samples = synthetic_samples(tax, per_leaf=1, safe=6, seed=3)
    holdout = [tax.categories[1].id, tax.categories[6].children[0].id]
    build = generate_tasks(samples, tax, TaskConfig(holdout=holdout, hide_fraction=0.3, own_category_hide_prob=0.2,
                                                    shuffle_ids=True, seed=5))
    tasks = build.tasks
    held = {n.id for h in holdout for n in [tax.get(h), *tax.get(h).children]}
    held_text = [t.casefold() for h in held for t in (tax.get(h).name, *tax.get(h).synonyms)]
    assert len(tasks["train"]) and len(tasks["eval_id"]) and len(tasks["eval_ood"])
    # Independent of the leak check: held-out nodes are never listed nor targeted outside eval_ood.
    for split in ("train", "eval_id"):
        for row in tasks[split]:
            system = row["prompt"][0]["content"][0]["text"].casefold()
            assert not held & set(json.loads(row["id_map"])) and held <= set(row["hidden"])
            assert row["category"] not in held and row["ood_name"] not in {tax.get(h).name for h in held}
            assert not [t for t in held_text if f": {t}" in system or f" {t}." in system], row["task_id"]
    for row in tasks["eval_ood"]:
        assert row["ood"] and row["category"] in held and not held & set(json.loads(row["id_map"]))
    train_ids = set(tasks["train"]["sample_id"])
    assert not train_ids & (set(tasks["eval_id"]["sample_id"]) | set(tasks["eval_ood"]["sample_id"]))
    # Every held-out unsafe sample is an eval_ood target, except text+image ones of the held-out
    # subcategory, whose listed parent is the right answer at category level (reported as excluded).
    under = [r for r in samples if r["category"] in held]
    assert len(tasks["eval_ood"]) + build.summary["excluded"]["count"] == len(under)
    excluded = build.summary["excluded"]
    assert excluded["count"] == 3  # one per category-level modality: text_image, text_video, text_audio
    modality_of = {r["id"]: r["modality"] for r in samples}
    assert sorted(modality_of[s] for s in excluded["sample_ids"]) == ["text_audio", "text_image", "text_video"]
    # the printed summary: counts per split and modality, OOD share, the held-out categories
    text = format_summary(build.summary)
    for name, ds in ((k, v) for k, v in tasks.items() if len(v)):
        m = {k: ds["modality"].count(k) for k in MODALITIES}
        ood = sum(ds["ood"])
        line = (f"{name:<9}{len(ds):>7}" + "".join(f"{m[k]:>{max(7, len(k) + 1)}}" for k in MODALITIES)
                + f"{sum(r is not None for r in ds['category']):>8}{ood:>7}{ood / len(ds):>10.1%}")
        assert line in text.splitlines()
    assert f"held out: {holdout[0]} {tax.get(holdout[0]).name}, {holdout[1]} {tax.get(holdout[1]).name}" in text
    assert "leak check passed" in text


def test_cli_errors_exit_with_the_message(tmp_path, capsys):
    import re

    base = ["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "default"]
    assert cli_main([*base, "--out", str(tmp_path / "a"), "--holdout", "C42"]) == 2
    assert re.search(r"proguard tasks: error: holdout: unknown node ID\(s\) C42", capsys.readouterr().err)
    assert cli_main([*base, "--out", str(tmp_path / "b"), "--hide-fraction", "1.5"]) == 2
    assert re.search(r"proguard tasks: error: hide_fraction: must be a number in \[0, 1\], got 1.5",
                     capsys.readouterr().err)
    assert cli_main(["tasks", "--data", str(BUNDLED_SAMPLES), "--taxonomy", "mlcommons", "--out", str(tmp_path / "c")]) == 2
    assert re.search(r"(?s)proguard tasks: error: \d+ problem\(s\).*samples.jsonl: row 4: category: 'Weapons' "
                     r"is not an ID or name in taxonomy 'mlcommons-hazards'", capsys.readouterr().err)
    assert not any((tmp_path / d).exists() for d in "abc")


def test_user_text_of_every_task_equals_the_protocols(tax):
    # The writer joins user texts column-wise (Arrow), not through protocol.user_text: every row must
    # still say exactly what the protocol renders, edge cases included.
    from proguard.protocol import user_text
    from proguard.models.tiny_vlm import make_test_image

    png = make_test_image()
    texts = [
        ("text", "How do I pick a lock?", None),
        ("text", "Ünïcödé 漢字 🙂 request", "a reply\nover two lines"),
        ("text", "nul \x00 byte", "User: Assistant: nested labels"),
        ("text", "  spaces around  ", "  "),
        ("text_image", "What is shown?", None),
        ("text_image", "Describe it", "It is a cat."),
        ("image", None, None),
    ]
    rows = []
    for k in range(60):
        modality, request, response = texts[k % len(texts)]
        unsafe = k % 2 == 0
        rows.append(Sample(
            id=f"e{k}", modality=modality, request=request, response=response,
            image=png if modality != "text" else None,
            request_label="unsafe" if unsafe else "safe",
            response_label=None if response is None else "safe",
            category="C8S1" if unsafe else None,
        ))
    samples = samples_to_dataset(rows)
    tasks = build_tasks(samples, tax, TaskConfig(hide_fraction=0.3, shuffle_ids=True, seed=5))
    by_id = samples_by_id(samples)
    seen = 0
    for split in tasks.values():
        for row in split.select_columns(["sample_id", "modality", "prompt"]):
            s = by_id[row["sample_id"]]
            got = row["prompt"][1]["content"][-1]["text"]
            assert got == user_text(row["modality"], s["request"], s["response"]), row["sample_id"]
            seen += 1
    assert seen == 60


def _grouped_samples(tax, n_prompts: int = 24, per_prompt: int = 6):
    """Do-Not-Answer's shape: each prompt once per model response, all rows of a prompt in one group."""
    leaves = [leaf for leaf in tax.leaves() if leaf.parent_id]
    rows = []
    for p in range(n_prompts):
        leaf = leaves[p % len(leaves)]
        for r in range(per_prompt):
            harmful = (p + r) % 5 == 0
            rows.append(Sample(f"q{p}-m{r}", "text", f"question {p}", f"answer {r}", None, "unsafe",
                               "unsafe" if harmful else "safe", leaf.id, group=f"q{p}"))
    return samples_to_dataset(rows)


@pytest.mark.parametrize("holdout", [[], ["C8"]])
def test_splits_never_cut_a_group(tax, holdout):
    """Every group lands whole in one split; groups touching eval_ood keep their other rows out of train."""
    samples = _grouped_samples(tax)
    group_of = dict(zip(samples["id"], samples["group"], strict=True))
    build = generate_tasks(samples, tax, TaskConfig(holdout=holdout, eval_fraction=0.25, seed=3))
    where: dict[str, set[str]] = {}
    for split, ds in build.tasks.items():
        for sid in ds["sample_id"]:
            where.setdefault(group_of[sid], set()).add(split)
    assert all("train" not in s or s == {"train"} for s in where.values()), where
    assert len(build.tasks["eval_id"]) > 0 and len(build.tasks["train"]) > 0
    assert build.summary["leak_check"]["groups_checked"] == 24


def test_leak_check_catches_a_group_across_splits(tax):
    """A planted group that spans train and eval_id is a LeakError naming the task and the group."""
    samples = _grouped_samples(tax, n_prompts=8)
    build = generate_tasks(samples, tax, TaskConfig(eval_fraction=0.25, seed=1))
    groups = dict(zip(samples["id"], samples["group"], strict=True))
    train_sid = build.tasks["train"][0]["sample_id"]
    eval_sid = build.tasks["eval_id"][0]["sample_id"]
    groups[eval_sid] = groups[train_sid]
    with pytest.raises(LeakError, match=r"eval_id: task .*group \('q\d+'\) is also in train"):
        check_split(build.tasks, tax, [], groups={k: f"group:{v}" for k, v in groups.items()})


# ---- held-out modality (OmniGuard's cross-modal transfer test) -------------------------------------
def test_holdout_modality_keeps_it_out_of_training(tax, synth):
    build = generate_tasks(synth, tax, TaskConfig(holdout=["C8"], holdout_modality="audio", seed=1))
    tasks = build.tasks
    ev = tasks["eval_modality"]
    assert len(ev) and set(ev["modality"]) == {"audio"}
    assert "audio" not in tasks["train"]["modality"] and "audio" not in tasks["eval_id"]["modality"]
    # every audio sample is somewhere: eval_modality (in-taxonomy) or eval_ood (held-out category)
    audio_ids = {s["id"] for s in synth if s["modality"] == "audio"}
    ood_audio = {r["sample_id"] for r in tasks["eval_ood"] if r["modality"] == "audio"}
    assert set(ev["sample_id"]) | ood_audio == audio_ids and not set(ev["sample_id"]) & ood_audio
    assert not any(ev["ood"]) and all(r["category"] is None or not r["category"].startswith("C8") for r in ev)
    assert all(a is not None for a in ev["audio"])
    assert set(tasks["train"]["modality"]) == set(MODALITIES) - {"audio"}
    assert build.summary["splits"]["eval_modality"]["modality"] == {"audio": len(ev)}
    assert list(tasks) == ["train", "eval_id", "eval_ood", "eval_modality"]
    assert "eval_modality" not in generate_tasks(synth, tax, TaskConfig(seed=1)).tasks  # only when asked for


def test_holdout_modality_errors(tax, bundled):
    with pytest.raises(TaskError, match="holdout_modality: must be one of text, image"):
        TaskConfig(holdout_modality="smell")
    text_only = bundled.filter(lambda r: r["modality"] == "text")
    with pytest.raises(TaskError, match="holdout_modality video: no sample has that modality"):
        generate_tasks(text_only, tax, TaskConfig(holdout_modality="video"))
