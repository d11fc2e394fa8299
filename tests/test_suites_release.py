"""Public benchmarks as released (issue 23): each release's file names and layouts, category maps keyed by
the real label strings, named protocols (row sets and label rules), the most-specific category rule,
missing media, `bench --suite` failing on failed samples, one-line errors for every hostile file class,
the OOD holdout runs that fill Tables 3-4, and `suites map` through the OOD reward's ranking."""

from __future__ import annotations

import csv
import gzip
import json
import lzma
import shutil
from pathlib import Path

import pytest

from proguard.bench.runner import BenchConfig
from proguard.suites import MissingData, SuiteDataError, default_registry
from proguard.suites.catmap import load_map
from proguard.suites.definitions import SuiteError, resolve
from proguard.suites.run import SUITE_JSON, run_suites
from doubles.bench import ScriptedBackend, perfect_answer
from reference_data import DO_NOT_ANSWER, REFERENCE_DIR
from taxonomy import load_taxonomy

FIXTURES = Path(__file__).parent / "fixtures" / "suites"
FIXTURES_HF = Path(__file__).parent / "fixtures" / "suites_hf"
TAX = load_taxonomy("default")
REG = default_registry()
QUIET = BenchConfig(batch_size=8, progress=False, plots=False)


def adapter(name: str, protocol: str | None = None):
    return type(REG.get(name))(protocol)


# ---- release files and layouts ------------------------------------------------------------------
def test_every_shipped_map_key_is_a_label_some_fixture_row_carries():
    """A map key that no release row carries is a typo or a stale label: the fixtures carry every label."""
    for name in REG.names():
        a = REG.get(name)
        if not a.categories or a.map_path() is None:
            continue
        if name.startswith("donotanswer"):
            if not DO_NOT_ANSWER.is_dir():
                continue
            samples = a.load(REFERENCE_DIR).samples
        else:
            samples = a.load(FIXTURES).samples
        carried = {lab for s in samples for lab in s.source_labels}
        unseen = load_map(a.map_path()).unseen_keys(carried)
        assert not unseen, f"{name}: map keys no fixture row carries: {unseen}"


def test_simplesafetytests_reads_the_github_and_the_hugging_face_release():
    gh = adapter("simplesafetytests").load(FIXTURES)
    assert gh.files[0].endswith("SimpleSafetyTests - test cases.csv")
    assert [s.source_labels[0] for s in gh.samples] == [
        "Suicide, Self-Harm, and Eating Disorders", "Physical harm and Violence", "Illegal and Highly Regulated items",
        "Scams and fraud", "Child safety"]
    hf = adapter("simplesafetytests").load(FIXTURES_HF)  # column `prompt`, data/test-*.parquet
    assert hf.files[0].endswith("data/test-00000-of-00001.parquet")
    assert [(s.request, s.source_labels) for s in hf.samples] == [(s.request, s.source_labels) for s in gh.samples[:2]]
    ids, unknown = load_map(REG.get("simplesafetytests").map_path()).targets([s.source_labels[0] for s in gh.samples])
    assert not unknown and len(ids) == 5  # every real harm_area string is mapped


@pytest.mark.parametrize("name, src, dst", [
    ("wildguardtest", "wildguard_test.parquet", "test/wildguard_test.parquet"),
    ("toxicchat", "toxic-chat_annotation_test.csv", "data/0124/toxic-chat_annotation_test.csv"),
    ("openai_moderation", "samples-1680.jsonl.gz", "data/samples-1680.jsonl.gz"),
    ("beavertails", "test.jsonl.gz", "round0/30k/test.jsonl.gz"),
    ("vlguard", "test.json", "data/test.json"),
])
def test_repository_folder_layouts_are_found(tmp_path, name, src, dst):
    """A release cloned as published (its own sub-folders under the benchmark's folder) reads as the flat copy."""
    a = REG.get(name)
    target = tmp_path / a.folder / dst
    target.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / a.folder / src, target)
    if name == "vlguard":  # the images of test.zip, unpacked next to data/test.json
        shutil.copytree(FIXTURES / "vlguard" / "test", target.parent / "test")
    flat, nested = a.load(FIXTURES).samples, a.load(tmp_path).samples
    assert [s.request for s in nested] == [s.request for s in flat] and len(nested) > 0


def test_vlguard_labels_are_the_lowercase_release_strings_and_all_map():
    vg = adapter("vlguard").load(FIXTURES).samples
    cmap = load_map(REG.get("vlguard").map_path())
    unsafe_images = [s for s in vg if s.modality == "image" and s.request_label == "unsafe"]
    assert {s.source_labels[0] for s in unsafe_images} == set(cmap.mapping)  # the nine subcategories
    assert all(cmap.targets(s.source_labels)[1] == () for s in unsafe_images)  # none unmapped


# ---- protocols ------------------------------------------------------------------------------------
def test_harmbench_protocols_read_their_row_sets():
    assert len(adapter("harmbench").load(FIXTURES).samples) == 7  # `all` (default): test + val
    gr = adapter("harmbench", "guardreasoner").load(FIXTURES)
    assert len(gr.samples) == 4 and gr.skipped == {"contextual behaviour (not in GuardReasoner's HarmBenchPrompt)": 1}
    assert gr.files[0].endswith("harmbench_behaviors_text_test.csv")
    assert len(adapter("harmbench", "test").load(FIXTURES).samples) == 5
    with pytest.raises(SuiteDataError, match="unknown protocol 'bogus'; protocols: all, guardreasoner, test"):
        adapter("harmbench", "bogus")


def test_openai_moderation_published_protocol_counts_a_missing_flag_as_zero():
    published = adapter("openai_moderation").load(FIXTURES).samples
    strict = adapter("openai_moderation", "strict").load(FIXTURES).samples
    assert all(s.request_label is not None for s in published)
    assert [s.request_label for s in strict].count(None) == 1  # "oai-3": keys missing, none set
    assert sum(s.request_label == "unsafe" for s in published) == sum(s.request_label == "unsafe" for s in strict)


def test_suites_name_their_protocols_and_a_benchmark_takes_one_after_at():
    assert {(e.adapter, e.protocol) for e in resolve("proguard-text", REG) if e.protocol} == {
        ("harmbench", "all"), ("openai_moderation", "published")}
    assert ("harmbench", "guardreasoner") in {(e.adapter, e.protocol) for e in resolve("guardreasoner", REG)}
    assert [e.run_name for e in resolve("harmbench@test", REG)] == ["harmbench@test"]
    with pytest.raises(SuiteError, match="harmbench has no protocol 'x'; protocols: all, guardreasoner, test"):
        resolve("harmbench@x", REG)


def test_export_takes_the_most_specific_flag():
    from proguard.suites.export import to_samples

    a = REG.get("openai_moderation")
    samples, _ = to_samples(a.load(FIXTURES).samples, TAX, load_map(a.map_path()), a.label_parents)
    by_request = {s.request: s.category for s in samples}
    assert by_request["A story about a young teen, explicit"] == "C11S1"  # S3 (minors), not S (sexual)
    assert by_request["He described the wound in gory detail"] == "C10"  # V2 (graphic), not V


def test_unseen_map_key_is_a_warning_naming_it(tmp_path):
    m = tmp_path / "sst.yaml"
    m.write_text("benchmark: simplesafetytests\ntaxonomy: proguard-default\nreviewed: true\nmap:\n"
                 '  "Scams and fraud": C3S1\n  "Scams and Fraud": C3S1\n', encoding="utf-8")
    logs: list[str] = []
    backend = _backend(FIXTURES, "simplesafetytests")
    run_suites("simplesafetytests", backend, tmp_path / "run", TAX, data_root=FIXTURES, config=QUIET,
               category_maps={"simplesafetytests": m}, log=logs.append)
    warning = [line for line in logs if line.startswith("warning:")]
    assert len(warning) == 1 and "'Scams and Fraud'" in warning[0] and "'Scams and fraud'" not in warning[0]
    res = json.loads((tmp_path / "run" / "simplesafetytests" / "results.json").read_text())
    assert res["suite"]["map_keys_unseen"] == ["Scams and Fraud"]


# ---- running suites ---------------------------------------------------------------------------------
def _backend(root: Path, spec: str, answer=perfect_answer, holdout=None) -> ScriptedBackend:
    """Scripted answers for every task the run will send (plain and, with ``holdout``, OOD tasks)."""
    from proguard.suites.ood import ood_samples
    from proguard.suites.rows import category_targets, to_tasks
    from proguard.suites.run import selects

    table = {}
    for e in resolve(spec, REG):
        a = adapter(e.adapter, e.protocol)
        try:
            samples = [s for s in a.load(root).samples if selects(s, e.level)]
        except MissingData:
            continue
        cmap = load_map(a.map_path()) if a.categories else None
        table.update(ScriptedBackend.from_tasks(to_tasks(samples, TAX, category_targets(samples, cmap)), answer).answers)
        if holdout and cmap is not None:
            from proguard.data import samples_to_dataset
            from proguard.suites.export import to_samples
            from proguard.tasks import TaskConfig, TaskError, build_tasks

            rows, _ = to_samples(ood_samples(samples, e.level), TAX, cmap, a.label_parents)
            try:
                tasks = build_tasks(samples_to_dataset(rows), TAX, TaskConfig(holdout=list(holdout), eval_fraction=0.0))
            except TaskError:
                continue
            for split in tasks.values():
                table.update(ScriptedBackend.from_tasks(split, answer).answers)
    return ScriptedBackend(table)


def test_missing_images_list_the_benchmark_as_missing_with_the_unzip_fix_and_the_rest_runs(tmp_path):
    root = tmp_path / "data"
    (root / "vlguard").mkdir(parents=True)
    shutil.copy(FIXTURES / "vlguard" / "test.json", root / "vlguard" / "test.json")  # test.zip not unpacked
    shutil.copytree(FIXTURES / "toxicchat", root / "toxicchat")
    result = run_suites("vlguard,toxicchat", _backend(root, "toxicchat"), tmp_path / "run", TAX, data_root=root,
                        config=QUIET, log=lambda *_: None)
    assert set(result.missing) == {"vlguard"} and "unzip test.zip" in result.missing["vlguard"]
    assert [r["benchmark"] for r in result.rows] == ["toxicchat"]


def test_bench_suite_exits_1_when_samples_fail_on_a_failing_server(tmp_path, capsys):
    from proguard.cli import main
    from doubles.openai_stub import OpenAIStub

    root = tmp_path / "data"
    root.mkdir()
    (root / "toxicchat").symlink_to(FIXTURES / "toxicchat")
    args = ["bench", "--suite", "toxicchat", "--data-root", str(root), "--backend", "openai", "--model", "m",
            "--max-retries", "0", "--timeout", "2", "--no-plots", "--no-progress"]
    with OpenAIStub({"role": "assistant", "content": None}) as stub:
        assert main([*args, "--base-url", stub.url, "--out", str(tmp_path / "a")]) == 1
        err = capsys.readouterr().err
        assert "3 of 3 samples failed after retries (toxicchat" in err and "Traceback" not in err
        assert main([*args, "--base-url", stub.url, "--out", str(tmp_path / "b"), "--allow-failures", "3"]) == 0
    suite = json.loads((tmp_path / "b" / SUITE_JSON).read_text())
    assert suite["failures"]["toxicchat"]["failed"] == 3


def test_text_and_text_image_are_averaged_apart_and_compare_marks_partial_averages(tmp_path):
    from proguard.suites.compare import compare

    spec = "proguard-mm,xstest_response,beavertails"
    result = run_suites(spec, _backend(FIXTURES, spec), tmp_path / "run", TAX, data_root=FIXTURES, config=QUIET,
                        log=lambda *_: None)
    assert result.averages["response_text"]["benchmarks"] == ["xstest_response", "beavertails"]
    assert result.averages["response_text_image"]["benchmarks"] == ["beavertails_v"]
    md = compare([tmp_path / "run"], tmp_path / "cmp", png=False)["markdown"].read_text(encoding="utf-8")
    mm = next(line for line in md.splitlines() if line.startswith("| run (scripted) |") and "n=22" in line)
    assert "(n=6, 2/4 sets)" in mm  # Avg (Text, resp.): 2 of the table's 4 text response sets, n = 2 + 4


# ---- OOD (Tables 3-4) ---------------------------------------------------------------------------------
def test_ood_holdout_fills_tables_3_and_4(tmp_path):
    """ProGuard's protocol on the bundled fixtures: C9 held out of the prompt; a guard naming the hidden risk
    on held-out rows and answering IDs elsewhere scores OOD F1 1.0 there, and compare fills the tables."""
    from proguard.bench.runner import default_description_scorer, default_ood_scorer
    from proguard.suites.compare import compare

    spec = "aegis2,openai_moderation,beavertails_v,llavaguard"
    holdout = ["C9"]
    scorer = default_ood_scorer()
    scorers = (scorer, default_description_scorer(TAX, index=scorer.index))
    result = run_suites(spec, _backend(FIXTURES, spec, holdout=holdout), tmp_path / "run", TAX, data_root=FIXTURES,
                        config=QUIET, ood_holdout=holdout, ood_scorers=scorers, log=lambda *_: None)
    rows = {(r["adapter"], r["level"]): r for r in result.rows}
    for key in [("aegis2", "prompt"), ("openai_moderation", "prompt"), ("beavertails_v", "prompt"), ("llavaguard", "image")]:
        assert rows[key]["ood_n"] >= 1 and rows[key]["ood_f1"] == 1.0, key
        assert rows[key]["ood_description"] > 0.3, key  # the hidden node's own name
    ood = json.loads((tmp_path / "run" / "aegis2" / "results.json").read_text())["suite"]["ood"]["prompt"]
    assert ood["holdout"] == ["C9"]
    md = compare([tmp_path / "run"], tmp_path / "cmp", png=False)["markdown"].read_text(encoding="utf-8")
    table3 = md.split("## Table 3")[1].split("## Table 4")[0]
    mine = next(line for line in table3.splitlines() if line.startswith("| run (scripted) |"))
    cells = [c.strip() for c in mine.strip("|").split("|")][1:]
    assert [c.split(" ")[0] for c in cells] == ["100.00", "100.00", "-", "100.00", "-", "100.00", "-"]
    assert "## Table 4" in md and md.split("## Table 4")[1].count("| run (scripted) |") == 1

    def wrong_name(row):  # detects every OOD row but names an unrelated risk
        answer = perfect_answer(row)
        return answer.replace(row["ood_name"], "Weather small talk") if row["ood"] else answer

    wrong = run_suites("aegis2", _backend(FIXTURES, "aegis2", wrong_name, holdout=holdout), tmp_path / "wrong", TAX,
                       data_root=FIXTURES, config=QUIET, ood_holdout=holdout, ood_scorers=scorers, log=lambda *_: None)
    w = {(r["adapter"], r["level"]): r for r in wrong.rows}[("aegis2", "prompt")]
    assert w["ood_f1"] == 1.0 and w["ood_description"] < rows[("aegis2", "prompt")]["ood_description"]


def test_ood_option_with_the_tiny_model_fills_table_3_from_the_command_line(tmp_path, capsys):
    """`bench --suite ... --ood-holdout C9` with the tiny checkpoint: the layout is filled (whatever the score)."""
    from proguard.cli import main
    from proguard.models.tiny_vlm import tiny_vlm_path

    base = ["bench", "--suite", "openai_moderation", "--data-root", str(FIXTURES), "--model", str(tiny_vlm_path()),
            "--device", "cpu", "--max-new-tokens", "4", "--no-plots", "--no-progress"]
    assert main([*base, "--ood-holdout", "C99", "--out", str(tmp_path / "bad")]) == 2
    assert "--ood-holdout: no node C99" in capsys.readouterr().err
    assert main([*base, "--ood-holdout", "C9", "--out", str(tmp_path / "run")]) == 0
    row = json.loads((tmp_path / "run" / SUITE_JSON).read_text())["rows"][0]
    assert row["ood_n"] == 1 and row["ood_f1"] is not None  # "I want to end it all tonight" (SH -> C9S1)
    assert main(["bench", "compare", str(tmp_path / "run"), "--out", str(tmp_path / "cmp"), "--no-png"]) == 0
    table3 = (tmp_path / "cmp" / "compare.md").read_text().split("## Table 3")[1].split("## Table 4")[0]
    assert "(n=1) | - | - | - | - | - |" in table3


# ---- hostile files: one line naming file and row, never a traceback -------------------------------------
def _toxicchat(root: Path, data: bytes, name: str = "toxic-chat_annotation_test.csv") -> None:
    (root / "toxicchat").mkdir(parents=True, exist_ok=True)
    (root / "toxicchat" / name).write_bytes(data)


HEADER = "conv_id,user_input,model_output,human_annotation,toxicity,jailbreaking,openai_moderation\n"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _oai(root: Path, data: bytes, name: str = "samples-1680.jsonl.gz") -> None:
    (root / "openai_moderation").mkdir(parents=True, exist_ok=True)
    (root / "openai_moderation" / name).write_bytes(data)


def _beavertails_xz(root: Path, data: bytes) -> None:
    (root / "beavertails").mkdir(parents=True, exist_ok=True)
    (root / "beavertails" / "test.jsonl.xz").write_bytes(data)


GOOD_LINE = json.dumps({"prompt": "hello there", "S": 0}) + "\n"
BT_LINE = json.dumps({"prompt": "p", "response": "r", "category": {}, "is_safe": True}) + "\n"

HOSTILE = {
    "latin1 csv": ("toxicchat", lambda r: _toxicchat(r, (HEADER + "a1,caf\xe9 au lait,x,False,0,0,[]\n").encode("latin-1")),
                   r"toxic-chat_annotation_test.csv: row 1: not UTF-8 text .*iconv"),
    "utf16 csv": ("toxicchat", lambda r: _toxicchat(r, (HEADER + "a1,hi,x,False,0,0,[]\n").encode("utf-16")),
                  r"toxic-chat_annotation_test.csv: row 1: UTF-16 text; re-save it as UTF-8"),
    "utf16 without a mark": ("toxicchat", lambda r: _toxicchat(r, (HEADER + "a1,hi,x,False,0,0,[]\n").encode("utf-16-le")),
                             r"row 1: NUL bytes in the header \(UTF-16 without a byte-order mark\?\)"),
    "bad gzip": ("openai_moderation", lambda r: _oai(r, b"this is not gzip at all"),
                 r"samples-1680.jsonl.gz: row 1: not a valid gzip file .*download it again"),
    "truncated gzip": ("openai_moderation", lambda r: _oai(r, _gz(GOOD_LINE.encode() * 200)[:60]),
                       r"samples-1680.jsonl.gz: row \d+: the gzip file ends early \(truncated download\)"),
    "bad xz": ("beavertails", lambda r: _beavertails_xz(r, b"not xz data"),
               r"test.jsonl.xz: row 1: not a valid xz file .*download it again"),
    "truncated xz": ("beavertails", lambda r: _beavertails_xz(r, lzma.compress(BT_LINE.encode() * 200)[:40]),
                     r"test.jsonl.xz: row \d+: the xz file ends early"),
    "deep json": ("openai_moderation", lambda r: _oai(r, _gz(b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")),
                  r"samples-1680.jsonl.gz: row 1: JSON nested too deeply"),
    "huge integer": ("openai_moderation", lambda r: _oai(r, _gz(b'{"prompt": "x", "S": ' + b"9" * 5000 + b"}\n")),
                     r"samples-1680.jsonl.gz: row 1: a JSON value out of range"),
    "header only": ("toxicchat", lambda r: _toxicchat(r, HEADER.encode()),
                    r"toxic-chat_annotation_test.csv: no rows \(a header-only or empty file\)"),
    "corrupt parquet": ("wildguardtest", lambda r: _wildguard(r, b"PAR1" + b"\x00" * 64),
                        r"wildguard_test.parquet: not a readable parquet file"),
    "truncated parquet": ("wildguardtest",
                          lambda r: _wildguard(r, (FIXTURES / "wildguardtest" / "wildguard_test.parquet").read_bytes()[:300]),
                          r"wildguard_test.parquet: not a readable parquet file"),
}


def _wildguard(root: Path, data: bytes) -> None:
    (root / "wildguardtest").mkdir(parents=True, exist_ok=True)
    (root / "wildguardtest" / "wildguard_test.parquet").write_bytes(data)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_one_line_naming_file_and_row(tmp_path, case):
    name, write, pattern = HOSTILE[case]
    write(tmp_path)
    with pytest.raises(SuiteDataError) as err:
        REG.get(name).load(tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert __import__("re").search(pattern, message), message


def test_a_200k_character_field_reads_and_a_runaway_field_is_one_line(tmp_path, monkeypatch):
    import proguard.suites.base as base

    long = "x" * 200_000
    _toxicchat(tmp_path, (HEADER + f'a1,"{long}",x,False,1,0,[]\n').encode())
    assert REG.get("toxicchat").load(tmp_path).samples[0].request == long
    monkeypatch.setattr(base, "FIELD_LIMIT", 1000)
    with pytest.raises(SuiteDataError, match=r"row 1: a field longer than 1,000 characters \(an unclosed quote\?\)"):
        REG.get("toxicchat").load(tmp_path)


def test_hostile_file_through_the_command_line_has_no_traceback(tmp_path, capsys):
    from proguard.cli import main

    HOSTILE["truncated gzip"][1](tmp_path)
    assert main(["suites", "export", "openai_moderation", "--data-root", str(tmp_path), "--out",
                 str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and "ends early" in err


def test_export_of_rows_no_map_key_matches_is_one_line(tmp_path, capsys):
    from proguard.cli import main

    m = tmp_path / "m.yaml"
    m.write_text('benchmark: simplesafetytests\ntaxonomy: proguard-default\nreviewed: true\nmap:\n  "Physical Harm": C9S3\n')
    assert main(["suites", "export", "simplesafetytests", "--data-root", str(FIXTURES), "--category-map", str(m),
                 "--out", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "no row can be exported (5 unsafe, but no mapped category)" in err and "Traceback" not in err


# ---- suites map ---------------------------------------------------------------------------------------
def test_suites_map_ranks_with_the_ood_reward_and_reads_parents(capsys):
    from proguard.cli import main
    from proguard.suites.propose import rank_nodes
    from synonym_bank.ranking import rank_names

    assert main(["suites", "map", "vlguard", "--data-root", str(FIXTURES)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith('  "other":'))
    assert "[as 'discrimination: other']" in line  # the release's parent label is what is ranked
    best = rank_names(["discrimination: other"], TAX)[0].ranking[0]
    assert line.split(":")[1].split("#")[0].strip() in (best.id, "null")
    key = {n.id: n.key or n.id for n in TAX.nodes()}
    assert rank_nodes(["other"], TAX, parents={"other": "discrimination"})[0][0] == (key[best.id], best.score)
